"""Test-time flips and seed ensembles inside the file: one graph that answers on the average of several
models and of an image's flipped views.

A dermoscopy image has no up, down, left or right, so its mirror images are as valid as it is. Each model's
backbone runs once on a batch of the views (the image, flipped left-right, up-down, and both) and its pooled
features are averaged over them; the models' averaged features are concatenated and one dense layer, whose
kernel stacks the models' own kernels divided by their number, makes the logits. Since the layers after the
pooling are linear, this equals averaging every model's logits over every view; and the file still ends in
one dense layer on one (1, D) feature vector, so the lesion gate reads it like any other file's. The edge
loads it like any classifier: same input, same outputs, same contract, the backbone's work times models x
views per frame (within the edge budget: docs/BENCHMARKS.md).

A zoom adds the same views of the image's central square enlarged back to the input size (the lesion,
which dermoscopy centres, larger): a crop and a bilinear resize inside the graph, so the backbone's work
doubles.

The models may differ in input size (an ensemble of input sizes): the file takes the largest, and a smaller
model sees it shrunk inside the graph by the same bilinear resize :func:`at_size` applies to arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["VIEWS", "at_size", "averaged", "feature_spans", "flipped", "with_flip_views", "zoomed"]

VIEWS = (1, 2, 4)  # the image; + left-right; + up-down and both


def flipped(images: Any, views: int, zoom: float | None = None) -> list[Any]:
    """The copies of a (N, H, W, C) array that :func:`averaged` averages over: ``views`` flips of the images,
    then, with ``zoom``, the same flips of their :func:`zoomed` centres (rounded to uint8, as the file's are)."""
    import numpy as np

    out = [images, images[:, :, ::-1]]
    out = out[:views] if views < 4 else [*out, images[:, ::-1], images[:, ::-1, ::-1]]
    if zoom:
        from keras import ops

        centres = np.clip(np.round(ops.convert_to_numpy(zoomed(images.astype("float32"), zoom))), 0, 255)
        out += flipped(centres.astype(images.dtype), views)
    return out


def zoomed(images: Any, zoom: float) -> Any:
    """(N, S, S, C) images' central square of side ``zoom`` x S, enlarged back to S by a bilinear resize (a
    tensor; arrays too)."""
    from keras import ops

    from edge.image.preprocess import center_box

    size = int(images.shape[1])
    x0, y0, x1, y1 = center_box(size, size, zoom)
    return ops.image.resize(images[:, y0:y1, x0:x1, :], (size, size), interpolation="bilinear")


def at_size(images: Any, size: int, batch: int = 256) -> Any:
    """(N, H, W, 3) images as a model of input ``size`` sees them inside an :func:`averaged` file of a larger
    input: the graph's bilinear resize, rounded to uint8 as the int8 file's resize output is (scale 1)."""
    import numpy as np
    from keras import ops

    if images.shape[1] == size:
        return images
    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch].astype("float32")
        chunk = ops.image.resize(chunk, (size, size), interpolation="bilinear")
        out[start : start + batch] = np.clip(np.round(ops.convert_to_numpy(chunk)), 0, 255)
    return out


def feature_spans(models: Sequence[Any]) -> list[tuple[int, int]]:
    """Where each model's pooled features sit in an :func:`averaged` file's features (its dense layer's input)."""
    widths = [int(m.get_layer("pool").output.shape[-1]) for m in models]
    starts = [sum(widths[:i]) for i in range(len(widths))]
    return [(s, s + w) for s, w in zip(starts, widths)]


def with_flip_views(model: Any, views: int = 4) -> Any:
    """``model`` answering on ``views`` flipped copies of its input (:func:`averaged` of one model)."""
    return averaged([model], views)


def averaged(models: Sequence[Any], views: int = 1, zoom: float | None = None) -> Any:
    """One Keras model answering with the mean logits of ``models`` (``train`` classifiers: ... -> "pool" ->
    "dropout" -> "logits", one label set) over ``views`` flipped copies of its input and, with ``zoom``, of
    its :func:`zoomed` centre; a single model with ``views=1`` and no zoom is returned as it is. The file's
    input is the largest model's; smaller ones see it resized.

    Raises:
        ValueError: ``views`` is not 1, 2 or 4, ``zoom`` not in (0, 1), a model is not a ``train``
            classifier, or the models differ in outputs.
    """
    import keras
    import numpy as np
    from keras import ops

    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views}")
    if zoom is not None and not 0 < zoom < 1:
        raise ValueError(f"zoom must lie between 0 and 1, got {zoom}")
    if not models:
        raise ValueError("no model to average")
    if len(models) == 1 and views == 1 and not zoom:
        return models[0]
    first = models[0]
    if any(m.output_shape != first.output_shape for m in models):
        raise ValueError("the models to average differ in output shape")
    size = max(int(m.input_shape[1]) for m in models)
    heads, bodies = [], []
    for i, m in enumerate(models):
        try:
            pooled, head = m.get_layer("pool").output, m.get_layer("logits")
        except ValueError as exc:
            raise ValueError(f"{m.name} is not a train classifier (no 'pool' and 'logits' layers)") from exc
        heads.append(head)
        bodies.append(keras.Model(m.inputs, pooled, name=f"features_{i}" if len(models) > 1 else "features"))
    image = keras.Input((size, size, first.input_shape[-1]), name="image")

    def flips(x: Any) -> list[Any]:
        out = [x, ops.flip(x, axis=2)][:views]
        return out if views < 4 else [*out, ops.flip(x, axis=1), ops.flip(out[1], axis=1)]

    views_of = flips(image) + (flips(zoomed(image, zoom)) if zoom else [])
    n = len(views_of)
    batch = ops.concatenate(views_of, axis=0) if n > 1 else image  # one backbone run on a batch of views
    features = []
    for body in bodies:
        own = int(body.input_shape[1])
        f = body(batch if own == size else ops.image.resize(batch, (own, own), interpolation="bilinear"))
        features.append(ops.mean(ops.reshape(f, (n, -1, f.shape[-1])), axis=0) if n > 1 else f)
    name = first.name + (f"_x{views}" if views > 1 else "") + (f"_zoom{round(zoom * 100)}" if zoom else "")
    name += f"_of{len(models)}" if len(models) > 1 else ""
    if len(models) == 1:
        return keras.Model(image, heads[0](features[0]), name=name)
    kernels = [h.get_weights() for h in heads]
    dense = keras.layers.Dense(first.output_shape[-1], name="logits")
    logits = dense(ops.concatenate(features, axis=-1))  # (N, models * D)
    dense.set_weights([np.concatenate([k for k, _ in kernels]) / len(models), np.mean([b for _, b in kernels], 0)])
    return keras.Model(image, logits, name=name)
