"""Quantization-aware fine-tuning: the fake-quant twin mirrors the converter, and fine-tuning helps it."""

import numpy as np
import pytest

pytestmark = pytest.mark.training
tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("fast_hardswish", [False, True], ids=["fused", "decomposed"])
def test_twin_quantizes_where_the_converter_does_with_its_ranges(mobilenet, fast_hardswish):
    from ai_edge_litert.interpreter import Interpreter

    from convert.qat import _calibrate, _simulated
    from convert.quantize import QuantizeConfig, edge_friendly, quantize

    model, _, images = mobilenet
    if fast_hardswish:
        model = edge_friendly(model)
    twin, fake_quants = _simulated(model)
    _calibrate(twin, fake_quants, images)
    names = {fq.name for fq in fake_quants}
    # every hard-swish, residual add and pooling output is quantized; a conv feeding its batch norm is not
    assert {"activation_fq", "expanded_conv_2_add_fq", "pool_fq", "logits_fq"} <= names
    assert "conv_fq" not in names and "expanded_conv_project_fq" not in names

    if fast_hardswish:  # x / 6 and relu6(x + 3) of every hard-swish are int8 tensors too
        assert {"activation_sixth", "activation_gate"} <= names
    interp = Interpreter(model_content=quantize(model, QuantizeConfig.int8(images, fast_hardswish=fast_hardswish)))
    tflite_range = {}
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        if t["dtype"] == np.int8 and len(scales) == 1:
            tflite_range[t["name"]] = float(scales[0]) * 255
    same, different = [], []
    for fq in fake_quants:
        layer, _, part = fq.name.rpartition("_")  # "activation_3_sixth" -> "activation_3", "sixth"
        # inside a decomposed hard-swish the converter names x / 6 "mul", relu6(x + 3) "add", the product "mul_1"
        output = "/mul_1" if fast_hardswish and "activation" in layer else ""
        inner = {"sixth": "/mul", "gate": "/add"}.get(part, output)
        if inner:
            match = [r for n, r in tflite_range.items() if any(x.endswith(f"/{layer}_1{inner}") for x in n.split(";"))]
        else:
            match = [r for n, r in tflite_range.items() if f"/{layer}_1/" in n or n.endswith(f"/{layer}_1")]
        if len(match) == 1 and "pad" not in layer:
            close = float(fq.hi - fq.lo) == pytest.approx(match[0], rel=0.01)
            (same if close else different).append(layer)
    assert len(same) >= 30 and not different, different

    float_out = np.asarray(model(images.astype("float32")))
    sim_out = np.asarray(twin(images.astype("float32"), training=False))
    assert not np.allclose(float_out, sim_out, atol=1e-4)  # it does simulate int8
    assert np.corrcoef(float_out.ravel(), sim_out.ravel())[0, 1] > 0.5


def test_finetune_brings_the_simulated_int8_model_closer_and_leaves_the_original_alone(mobilenet):
    from convert.qat import QATConfig, _calibrate, _simulated, quantization_aware_finetune

    model, _, images = mobilenet
    before = [w.copy() for w in model.get_weights()]
    teacher = np.asarray(model(images.astype("float32")))

    def divergence(twin) -> float:  # what the fine-tuning minimises: KL(teacher || simulated int8)
        p = tf.nn.softmax(teacher).numpy()
        q = tf.nn.softmax(twin(images.astype("float32"), training=False)).numpy()
        return float(np.mean(np.sum(p * np.log(p / q), axis=1)))

    twin, fqs = _simulated(model)
    _calibrate(twin, fqs, images)
    error_before = divergence(twin)
    student, twin = quantization_aware_finetune(model, images, images, QATConfig(epochs=20, learning_rate=3e-5))
    error_after = divergence(twin)

    assert error_after < error_before
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert student is not model and student.count_params() == model.count_params()


def test_finetune_runs_on_the_decomposed_hard_swish(mobilenet):
    from convert.graph import all_layers
    from convert.qat import QATConfig, quantization_aware_finetune
    from convert.quantize import decomposed_hard_swish_layer, edge_friendly

    model, _, images = mobilenet
    student, twin = quantization_aware_finetune(edge_friendly(model), images, images, QATConfig(epochs=1))
    assert sum(isinstance(layer, decomposed_hard_swish_layer()) for layer in all_layers(student)) >= 10
    float_out = np.asarray(student(images.astype("float32")))
    sim_out = np.asarray(twin(images.astype("float32"), training=False))
    assert np.isfinite(sim_out).all() and not np.allclose(float_out, sim_out, atol=1e-4)
