import numpy as np
import pytest

from convert.representative import load_convert_data, stratified_pick
from edge.image.preprocess import load_image, preprocess
from edge.model.contract import ModelContract
from edge.model.runtime import load_interpreter_class
from tests.conftest import make_folder_dataset

pytestmark = pytest.mark.training
Interpreter, _ = load_interpreter_class()  # the runtime the edge uses


def test_stratified_pick_keeps_every_class_and_proportions():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    pick = stratified_pick(labels, 20, seed=0)
    counts = np.bincount(labels[pick], minlength=3)
    assert counts.tolist() == [16, 3, 1]
    assert len(set(pick)) == len(pick)
    assert (stratified_pick(labels, 20, seed=0) == pick).all()


def test_representative_images_are_the_training_preprocessing_and_never_validation(tmp_path):
    data = make_folder_dataset(tmp_path / "d", per_class=10)
    contract = ModelContract(task="classify", labels=("keratosis", "melanoma", "nevus"), image_size=48)
    cd = load_convert_data(data, contract, None, samples=12)
    everything = {preprocess(load_image(p), contract).tobytes() for p in sorted(data.rglob("*.jpg"))}
    rep = {x.tobytes() for x in cd.representative}
    val = {x.tobytes() for x in cd.validation}
    assert rep <= everything and val <= everything
    assert not rep & val
    assert len(cd.representative) == 12 and cd.representative.dtype == np.uint8


def test_edge_friendly_hard_swish_keeps_the_function_and_leaves_no_fused_op(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    from convert.quantize import QuantizeConfig, edge_friendly, quantize

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3)(x)
    x = keras.layers.Activation("hard_swish")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    fast = edge_friendly(model)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(model.predict(images, verbose=0), fast.predict(images, verbose=0), atol=1e-5)

    def op_names(config):
        interp = Interpreter(model_content=quantize(model, config))
        return {d["op_name"] for d in interp._get_ops_details()}

    assert "HARD_SWISH" in op_names(QuantizeConfig.int8(images, fast_hardswish=False))
    assert "HARD_SWISH" not in op_names(QuantizeConfig.int8(images))  # decomposed by default


def test_int8_ranges_are_not_widened_by_in_place_ops():
    """The calibrator logs ADD / MUL inputs after the op ran in place; the stored ranges must be the real ones."""
    pytest.importorskip("tensorflow")
    import keras

    from convert.quantize import QuantizeConfig, quantize

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)  # x / 127.5 in [0, 2], then - 1
    x = keras.layers.Conv2D(8, 3, padding="same")(x)  # zero padding: the rescaling cannot be folded into it
    x = keras.layers.Activation("hard_swish")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    interp = Interpreter(model_content=quantize(model, QuantizeConfig.int8(images, fast_hardswish=True)))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}

    def value_range(index):
        scale, zero = tensors[index]["quantization"]
        return (-128 - zero) * scale, (127 - zero) * scale

    muls = [op for op in interp._get_ops_details() if op["op_name"] == "MUL"]
    lo, hi = value_range(muls[0]["outputs"][0])  # the input rescaling x / 127.5
    assert lo == pytest.approx(0, abs=0.02) and hi == pytest.approx(2, abs=0.02)  # in place: [-1, 2]
    conv = next(op for op in interp._get_ops_details() if op["op_name"] == "CONV_2D")
    sixth = next(op for op in muls if op["inputs"][0] == conv["outputs"][0])  # hard-swish's x / 6
    (x_lo, x_hi), (lo, hi) = value_range(conv["outputs"][0]), value_range(sixth["outputs"][0])
    assert lo == pytest.approx(x_lo / 6, rel=0.05) and hi == pytest.approx(x_hi / 6, rel=0.05)


def test_int8_needs_representative_images():
    from convert.quantize import QuantizeConfig

    with pytest.raises(ValueError, match="representative"):
        QuantizeConfig("int8")
    with pytest.raises(ValueError, match="mode must be"):
        QuantizeConfig("int4")
