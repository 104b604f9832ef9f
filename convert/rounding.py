"""Data-aware weight rounding: put every kernel on its int8 grid the way that costs the least output.

The converter rounds each weight to the nearest of 255 levels per output channel (scale = the
channel's largest |weight| / 127, after folding batch norm). Nearest is not best: the error a
channel adds to its output is dw^T C dw, with dw the rounding errors of its weights and C the
second moment of the inputs it reads (Nagel et al. 2020, "Up or down? Adaptive rounding for
post-training quantization"). Dermoscopy images are smooth, so C is dominated by the local mean:
the first depthwise filters are edge detectors whose weights nearly cancel, and nearest rounding
breaks the cancellation and leaks brightness into them. Rounding MobileNetV3-Small's weights to
nearest (float activations) changed 10 % of one model's validation answers, that first 3x3
depthwise layer alone 9 % (docs/BENCHMARKS.md).

Here each weight goes up or down, chosen greedily per output channel to lower dw^T C dw, with C
measured on representative images at the layer's input (earlier layers already rounded). The
result is written back as float weights that lie exactly on the grid, so the converter's own
nearest rounding reproduces it. Symmetric per-channel scales are unchanged by batch-norm folding
(a per-channel factor), so rounding before folding is rounding after it.
"""

from __future__ import annotations

import logging

import numpy as np

from convert.graph import all_layers

__all__ = ["nearest_kernel", "round_kernel", "round_weights"]

log = logging.getLogger(__name__)

_MAX_ROWS = 40_000  # input rows (positions x images) sampled for each layer's second moment


def _channel_scales(kernel: np.ndarray, depthwise: bool) -> np.ndarray:
    """Symmetric int8 scale of each output channel, broadcastable against ``kernel``."""
    axes = (0, 1, 3) if depthwise else tuple(range(kernel.ndim - 1))
    scale = np.abs(kernel).max(axis=axes, keepdims=True) / 127.0
    return np.where(scale > 0, scale, 1.0)


def nearest_kernel(kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """``kernel`` rounded to nearest on its int8 grid, as the converter does (for comparison)."""
    scale = _channel_scales(kernel, depthwise)
    return (np.clip(np.round(kernel / scale), -127, 127) * scale).astype(kernel.dtype)


def _greedy(target: np.ndarray, second_moment: np.ndarray) -> np.ndarray:
    """Integers next to ``target`` (one row per output channel) with a small (q - target)^T C (q - target).

    Starts from nearest rounding and flips one weight at a time to its other neighbour while that
    lowers the error. ``second_moment`` is (k, k) shared by all rows, or (rows, k, k).
    """
    q = np.round(target)
    low = np.floor(target)
    for row in range(len(target)):
        c = second_moment[row] if second_moment.ndim == 3 else second_moment
        diag = np.diag(c)
        d = q[row] - target[row]
        grad = c @ d
        for _ in range(4 * len(d)):
            step = np.where(q[row] > low[row], -1.0, 1.0)  # towards the other neighbour
            step[q[row] == target[row]] = 0.0  # already exact (the channel's largest weight)
            gain = 2 * step * grad + step**2 * diag  # change of d^T C d for each single flip
            j = int(np.argmin(gain))
            if gain[j] >= -1e-12 * max(float(diag.max()), 1e-30):
                break
            q[row, j] += step[j]
            d[j] += step[j]
            grad += c[:, j] * step[j]
    return np.clip(q, -127, 127)


def round_kernel(kernel: np.ndarray, second_moment: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """``kernel`` on its symmetric per-output-channel int8 grid, rounded against ``second_moment``.

    Conv2D / Dense kernels (..., k_in, out) read input patches of length prod(shape[:-1]) with a shared
    (k, k) second moment; depthwise kernels (kh, kw, channels, 1) read kh*kw taps per channel with a
    (channels, kh*kw, kh*kw) second moment.
    """
    scale = _channel_scales(kernel, depthwise)
    if depthwise:
        kh, kw, ch, _ = kernel.shape
        target = (kernel[..., 0] / scale[..., 0]).reshape(kh * kw, ch).T
        q = _greedy(target, second_moment)
        return (q.T.reshape(kh, kw, ch)[..., None] * scale).astype(kernel.dtype)
    target = (kernel / scale).reshape(-1, kernel.shape[-1]).T
    q = _greedy(target, second_moment)
    return (q.T.reshape(kernel.shape) * scale).astype(kernel.dtype)


def _patches(layer, x: np.ndarray) -> np.ndarray:
    """The rows ``layer`` multiplies its kernel with, from its input batch ``x``: (rows, k) or, depthwise,
    (rows, kh * kw, channels)."""
    import keras
    import tensorflow as tf

    kh, kw = layer.kernel.shape[:2] if x.ndim == 4 else (1, 1)
    if kh * kw > 1:
        x = tf.image.extract_patches(
            x, [1, kh, kw, 1], [1, *layer.strides, 1], [1, *layer.dilation_rate, 1], layer.padding.upper()
        ).numpy()  # (..., kh * kw * channels), ordered (kh, kw, channels) like the kernel
    rows = x.reshape(-1, x.shape[-1])
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return rows.reshape(len(rows), kh * kw, -1)
    return rows


def _second_moment(layer, probe, images: np.ndarray, rng: np.random.Generator, batch: int = 16) -> np.ndarray:
    """E[row row^T] over the input rows ``layer`` reads, sampled from every batch of ``images``."""
    per_batch = max(1, _MAX_ROWS * batch // len(images))
    total, n = 0.0, 0
    for start in range(0, len(images), batch):
        x = np.asarray(probe(images[start : start + batch].astype("float32"), training=False))
        rows = _patches(layer, x)
        rows = rows[rng.choice(len(rows), min(len(rows), per_batch), replace=False)].astype(np.float64)
        # depthwise: one (kh*kw, kh*kw) moment per channel
        total = total + (np.einsum("nkc,nlc->ckl", rows, rows) if rows.ndim == 3 else rows.T @ rows)
        n += len(rows)
    return total / n


def _eligible(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depth_multiplier == 1
    if isinstance(layer, keras.layers.Conv2D):
        return layer.groups == 1
    return isinstance(layer, keras.layers.Dense)


def round_weights(model, images: np.ndarray, seed: int = 0):
    """A copy of ``model`` whose kernels lie on their int8 grids, rounded to spare the outputs.

    ``images`` are uint8 (N, S, S, 3) representative images, read by ``model`` or by the one nested
    backbone that takes the image (as in equalize). Returns (copy, number of kernels rounded).
    """
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    owners = {id(layer): sub for sub in copy.layers if isinstance(sub, keras.Model) for layer in all_layers(sub)}
    count = 0
    for layer in all_layers(copy):
        if not _eligible(layer):
            continue
        owner = owners.get(id(layer), copy)
        moment = _second_moment(layer, keras.Model(owner.input, layer.input), images, rng)
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        layer.kernel.assign(round_kernel(np.asarray(layer.kernel), moment, depthwise))
        count += 1
        log.debug("rounded %s", layer.name)
    return copy, count
