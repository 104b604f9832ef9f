"""Data-aware rounding: weights land on the converter's int8 grid, the output error falls, the file keeps it."""

import numpy as np
import pytest


def _error(kernel: np.ndarray, rounded: np.ndarray, moment: np.ndarray) -> float:
    d = (rounded - kernel).reshape(-1, kernel.shape[-1]).T
    return float(np.einsum("ok,kl,ol->", d, moment, d))


def test_a_smooth_input_keeps_an_edge_filter_balanced():
    """The case behind it: on smooth images nearest rounding leaks the local mean into an edge filter."""
    from convert.rounding import round_kernel

    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(9, 6)).astype(np.float32)
    kernel -= kernel.mean(0)  # zero-sum filters: blind to a flat patch
    flat = rng.normal(size=(500, 1)) * 50 + 100  # smooth inputs: the 9 taps nearly equal
    patches = flat + rng.normal(size=(500, 9))
    moment = patches.T @ patches / len(patches)

    rounded = round_kernel(kernel, moment)
    scale = np.abs(kernel).max(0) / 127
    steps = rounded / scale
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)  # on the grid ...
    np.testing.assert_allclose(np.abs(rounded).max(0), np.abs(kernel).max(0), rtol=1e-6)  # ... with the same scale
    assert np.all(np.abs(steps - kernel / scale) < 1 + 1e-3)  # each weight at one of its two neighbours
    nearest = np.round(kernel / scale) * scale
    assert _error(kernel, rounded, moment) < 0.2 * _error(kernel, nearest, moment)
    assert np.abs(rounded.sum(0)).max() < np.abs(nearest.sum(0)).max()  # the response to a flat patch


def test_depthwise_kernels_are_rounded_per_channel():
    from convert.rounding import round_kernel

    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    taps = rng.normal(size=(300, 9, 4)) + 3.0
    moment = np.einsum("nkc,nlc->ckl", taps, taps) / len(taps)
    rounded = round_kernel(kernel, moment, depthwise=True)
    scale = np.abs(kernel).max(axis=(0, 1, 3), keepdims=True) / 127
    np.testing.assert_allclose(rounded / scale, np.round(rounded / scale), atol=1e-3)
    for c in range(4):
        d_aware = (rounded - kernel)[:, :, c, 0].reshape(-1)
        d_near = (np.round(kernel / scale) * scale - kernel)[:, :, c, 0].reshape(-1)
        assert d_aware @ moment[c] @ d_aware <= d_near @ moment[c] @ d_near + 1e-12


@pytest.mark.training
def test_the_converted_file_holds_the_chosen_integers(mobilenet):
    """After batch-norm folding the converter's own nearest rounding must reproduce the chosen grid points."""
    pytest.importorskip("tensorflow")
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from convert.quantize import QuantizeConfig, quantize
    from convert.rounding import round_weights

    model, _, images = mobilenet
    before = [w.copy() for w in model.get_weights()]
    rounded, count = round_weights(model, images)
    assert count >= 50  # every conv, depthwise and dense kernel of MobileNetV3-Small
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the original is untouched
    x = images.astype("float32")
    assert np.mean(np.asarray(rounded(x)).argmax(1) == np.asarray(model(x)).argmax(1)) >= 0.9

    backbone = rounded.get_layer("MobileNetV3Small")
    first = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.DepthwiseConv2D))
    chosen = np.asarray(first.kernel)[..., 0]  # (3, 3, channels)
    steps = np.round(chosen / (np.abs(chosen).max(axis=(0, 1)) / 127))
    original = np.asarray(next(la for la in model.get_layer("MobileNetV3Small").layers if la.name == first.name).kernel)
    assert not np.array_equal(steps, np.round(original[..., 0] / (np.abs(original[..., 0]).max(axis=(0, 1)) / 127)))

    interp = Interpreter(model_content=quantize(rounded, QuantizeConfig.int8(images)))
    stored = [
        interp.get_tensor(t["index"])[0]  # (1, 3, 3, channels) int8
        for t in interp.get_tensor_details()
        if t["dtype"] == np.int8 and tuple(t["shape"]) == (1, 3, 3, chosen.shape[-1])
    ]
    # the file's first 3x3 depthwise kernel: its integers are the chosen ones, up to the sign batch norm may flip
    assert any(np.array_equal(np.abs(s), np.abs(steps)) for s in stored)
