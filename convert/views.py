"""Test-time flips inside the file: one graph that answers on the average of an image's flipped views.

A dermoscopy image has no up, down, left or right, so its mirror images are as valid as it is. The
wrapper runs the backbone once on a batch of the views (the image, flipped left-right, up-down, and
both), averages their pooled features and applies the classifier's own dense layer once. Since that
layer is linear, this equals averaging the views' logits; and the file still ends in one dense layer on
one (1, D) feature vector, so the lesion gate reads the averaged features like any other file's. The
edge loads it like any classifier: same input, same outputs, same contract, four times the backbone's
work per frame (within the edge budget: docs/BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any

__all__ = ["VIEWS", "flipped", "with_flip_views"]

VIEWS = (1, 2, 4)  # the image; + left-right; + up-down and both


def flipped(images: Any, views: int) -> list[Any]:
    """The ``views`` flipped copies of a (N, H, W, C) array that :func:`with_flip_views` averages over."""
    out = [images, images[:, :, ::-1]]
    return out[:views] if views < 4 else [*out, images[:, ::-1], images[:, ::-1, ::-1]]


def with_flip_views(model: Any, views: int = 4) -> Any:
    """``model`` (a ``train`` classifier: ... -> "pool" -> "dropout" -> "logits") answering on ``views``
    flipped copies of its input; ``views=1`` returns ``model`` itself.

    Raises:
        ValueError: ``views`` is not 1, 2 or 4, or the model has no "pool" and "logits" layers.
    """
    import keras
    from keras import ops

    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views}")
    if views == 1:
        return model
    try:
        pooled, head = model.get_layer("pool").output, model.get_layer("logits")
    except ValueError as exc:
        raise ValueError(f"{model.name} is not a train classifier (no 'pool' and 'logits' layers)") from exc
    features = keras.Model(model.inputs, pooled, name="features")
    image = keras.Input(model.input_shape[1:], name="image")
    flipped = [image, ops.flip(image, axis=2)]
    if views == 4:
        flipped += [ops.flip(image, axis=1), ops.flip(flipped[1], axis=1)]
    f = features(ops.concatenate(flipped, axis=0))  # (views * N, D): one backbone run on a batch
    mean = ops.mean(ops.reshape(f, (views, -1, f.shape[-1])), axis=0)  # (N, D)
    return keras.Model(image, head(mean), name=f"{model.name}_x{views}")
