"""Activation equalization keeps the float function and evens out the ReLU channel ranges."""

import numpy as np
import pytest

pytestmark = pytest.mark.training
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def reparametrized(mobilenet):
    from training.model import reparametrize_batchnorm

    model, backbone, images = mobilenet
    reparametrize_batchnorm(backbone, images)  # real batch-norm statistics, as after training
    return model, images


def _relu_channel_maxima(model, images) -> dict[str, np.ndarray]:
    import keras

    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    relus = [layer for layer in backbone.layers if isinstance(layer, keras.layers.ReLU) and layer.max_value is None]
    outs = keras.Model(backbone.input, [r.output for r in relus])(images.astype("float32"))
    return {r.name: np.asarray(o).reshape(-1, o.shape[-1]).max(0) for r, o in zip(relus, outs)}


def test_equalization_keeps_the_function_and_balances_the_channels(reparametrized):
    from convert.equalize import equalize_activations

    model, images = reparametrized
    before = [w.copy() for w in model.get_weights()]
    equalized, count = equalize_activations(model, images, strength=0.5)

    # the three ReLU blocks of MobileNetV3-Small: block 0's depthwise, blocks 1 and 2's expand and depthwise
    assert count == 5
    x = images.astype("float32")
    np.testing.assert_allclose(np.asarray(equalized(x)), np.asarray(model(x)), rtol=1e-4, atol=1e-4)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the original is untouched

    spread_before = _relu_channel_maxima(model, images)
    spread_after = _relu_channel_maxima(equalized, images)
    changed = 0
    for name, peak in spread_before.items():
        live = peak > 1e-3
        ratio_before = peak[live].min() / peak[live].max()
        ratio_after = spread_after[name][live].min() / spread_after[name][live].max()
        if ratio_after > ratio_before * 1.01:
            changed += 1
            assert ratio_after == pytest.approx(np.sqrt(ratio_before), rel=1e-3)  # strength 0.5: square root
    assert changed == count


def test_equalize_is_a_no_op_without_relu_blocks():
    import keras

    from convert.equalize import equalize_activations

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    copy, count = equalize_activations(model, np.zeros((2, 8, 8, 3), np.uint8))
    assert count == 0 and copy is not model
