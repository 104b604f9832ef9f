"""Activation equalization: a function-preserving rewrite that gives int8 activations more levels.

TFLite quantizes each activation tensor with one scale, set by its largest channel. In
MobileNetV3's first blocks a few ReLU channels reach 100+ while most stay near 1, so most channels
get a handful of int8 levels and the signal is lost right there (docs/BENCHMARKS.md). ReLU is
positively homogeneous: dividing channel c of the batch norm before it by s_c and multiplying the
input-channel-c weights of every layer reading it by s_c leaves the float function unchanged
(cross-layer equalization, Nagel et al. 2019, applied to activation ranges). The scales are chosen
from the channel maxima on the representative set: s_c = (max_c / max)^strength, so small channels
are enlarged; ``strength`` trades activation levels against the reader's per-channel weight levels.
"""

from __future__ import annotations

import logging

import numpy as np

from convert.graph import all_layers, consumers

__all__ = ["equalize_activations"]

log = logging.getLogger(__name__)


def _readers(op, readers_of: dict[int, list]) -> list | None:
    """The convolutions whose input-channel weights absorb a per-channel scale of ``op``'s output.

    Padding, average pooling and a squeeze-excite multiply pass the scale through (the gate is
    computed from the pooled, already compensated input); anything else makes the tensor ineligible.
    """
    import keras

    found = []
    for reader in readers_of.get(id(op), []):
        if isinstance(reader, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            found.append(reader)
            continue
        if isinstance(reader, keras.layers.ZeroPadding2D | keras.layers.GlobalAveragePooling2D | keras.layers.Multiply):
            more = _readers(reader, readers_of)
            if more is None:
                return None
            found.extend(more)
            continue
        return None
    return found or None


def _candidates(model) -> list[tuple]:
    """(relu, batch norm before it, readers) for every ReLU whose channels can be rescaled."""
    import keras

    readers_of = consumers(model)
    producer_of = {id(r): pid for pid, readers in readers_of.items() for r in readers}
    by_id = {id(layer): layer for layer in all_layers(model)}
    out = []
    for layer in all_layers(model):
        if not isinstance(layer, keras.layers.ReLU) or layer.max_value is not None:
            continue
        bn = by_id.get(producer_of.get(id(layer)))
        if not isinstance(bn, keras.layers.BatchNormalization) or not bn.scale or not bn.center:
            continue
        readers = _readers(layer, readers_of)
        if readers:
            out.append((layer, bn, list({id(r): r for r in readers}.values())))  # each scaled once
    return out


def equalize_activations(model, images: np.ndarray, strength: float = 0.5):
    """A copy of ``model`` with the same float function and better-balanced ReLU channel ranges.

    ``images`` are uint8 (N, S, S, 3) representative images. Returns (copy, number of tensors equalized).
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    found = _candidates(copy)
    if not found:
        return copy, 0
    owner = next((m for m in copy.layers if isinstance(m, keras.Model) and found[0][0] in m.layers), copy)
    found = [f for f in found if f[0] in owner.layers]  # one probe: the backbone that reads the image
    probe = keras.Model(owner.input, [relu.output for relu, _, _ in found])
    maxima = [np.zeros(relu.output.shape[-1]) for relu, _, _ in found]
    for start in range(0, len(images), 32):
        outs = probe(images[start : start + 32].astype("float32"), training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for k, a in enumerate(outs):
            a = np.asarray(a)
            maxima[k] = np.maximum(maxima[k], a.reshape(-1, a.shape[-1]).max(0))
    for (relu, bn, readers), peak in zip(found, maxima):
        live = peak > 0
        s = np.ones_like(peak)
        s[live] = (peak[live] / peak.max()) ** strength
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([gamma / s, beta / s, mean, var])
        for reader in readers:
            weights = reader.get_weights()
            weights[0] = weights[0] * s[None, None, :, None]  # (kh, kw, in channels, out or multiplier)
            reader.set_weights(weights)
        log.debug("equalized %s: channel maxima %.2f..%.2f", relu.name, peak[live].min(), peak.max())
    return copy, len(found)
