"""Convert a Keras classifier to TFLite: full-integer int8, float16 or float32."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MODES", "QuantizeConfig", "decomposed_hard_swish", "decomposed_hard_swish_layer", "edge_friendly",
    "pin_input_range", "quantize", "tiny_scales",
]  # fmt: skip

log = logging.getLogger(__name__)

MODES = ("int8", "float16", "float32")
_HARD_SWISH = ("hard_swish", "hard_silu")


@dataclass(frozen=True)
class QuantizeConfig:
    """How to convert.

    int8: int8 weights and activations, uint8 input (camera pixels go in as they are, scale 1,
    zero point 0) and int8 output, calibrated on ``representative`` images (the shared preprocess).
    """

    mode: str = "int8"
    representative: np.ndarray | None = None  # (N, S, S, 3) uint8
    # int8: decompose hard-swish so it runs in one XNNPACK partition: ~3x faster on x86; with measured
    # ranges (convert/ranges.py) and QAT it agrees as well as the fused op (docs/BENCHMARKS.md).
    fast_hardswish: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "int8" and (self.representative is None or len(self.representative) == 0):
            raise ValueError("int8 conversion needs representative images")

    @classmethod
    def int8(cls, representative: np.ndarray, fast_hardswish: bool = True) -> QuantizeConfig:
        return cls("int8", representative, fast_hardswish)

    def representative_dataset(self) -> Iterator[list[np.ndarray]]:
        for i, image in enumerate(self.representative):
            batch = image[None].astype(np.float32)
            yield [pin_input_range(batch) if i == 0 else batch]


def pin_input_range(batch: np.ndarray) -> np.ndarray:
    """A float32 copy of ``batch`` whose first image holds a 0 and a 255 pixel.

    Calibrated with it first, the input range is the full 0..255, so uint8 camera pixels go into
    the int8 model as they are (scale 1, zero point 0).
    """
    batch = batch.astype(np.float32)
    batch[0, 0, 0, :] = 0.0
    batch[0, 0, 1, :] = 255.0
    return batch


def decomposed_hard_swish(x, sixth=lambda t: t, gate=lambda t: t):
    """``(x / 6) * relu6(x + 3)`` in an order the converter does not fuse back into HARD_SWISH.

    ``sixth`` and ``gate`` wrap the two inner tensors (quantization-aware fine-tuning fake-quantizes them).
    """
    import keras

    return sixth(x * (1.0 / 6.0)) * gate(keras.ops.relu6(x + 3.0))


@functools.cache  # one class per process, so isinstance works
def decomposed_hard_swish_layer():
    import keras

    @keras.saving.register_keras_serializable(package="skinedge")  # clone_model rebuilds it from its config
    class DecomposedHardSwish(keras.layers.Layer):
        """hard_swish(x) = (x / 6) * relu6(x + 3), written so the converter does not fuse it.

        The fused int8 HARD_SWISH op has no XNNPACK kernel: every one splits the graph and runs on
        the slow reference path (measured: int8 3x slower than float32 on x86). MUL, ADD and
        RELU6 in this order stay inside one XNNPACK partition.
        """

        def call(self, x):
            return decomposed_hard_swish(x)

    return DecomposedHardSwish


def edge_friendly(model):
    """A copy of ``model`` (same weights, same function) whose hard-swish runs fast in int8."""
    import keras

    layer_cls = decomposed_hard_swish_layer()

    def clone(m):
        def swap(layer):
            if isinstance(layer, keras.Model):
                return clone(layer)
            if isinstance(layer, keras.layers.Activation) and str(layer.get_config()["activation"]) in _HARD_SWISH:
                return layer_cls(name=layer.name)
            return layer.__class__.from_config(layer.get_config())

        return keras.models.clone_model(m, clone_function=swap)

    copy = clone(model)
    copy.set_weights(model.get_weights())
    return copy


def _converter(model, fast_hardswish: bool):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(edge_friendly(model) if fast_hardswish else model)


def quantize(model, config: QuantizeConfig) -> bytes:
    """Return the ``.tflite`` flatbuffer of ``model`` converted as ``config`` says."""
    from convert.ranges import measured_ranges

    # Keras prints every captured variable of the exported function (hundreds of lines) to stdout
    with contextlib.redirect_stdout(io.StringIO()), measured_ranges(), warnings.catch_warnings():
        # uint8 input: its scale comes from the representative set, not from user-given statistics
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return _quantize(model, config)


def _quantize(model, config: QuantizeConfig) -> bytes:
    import tensorflow as tf

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    conv = _converter(model, config.fast_hardswish and config.mode == "int8")  # float files keep the fused op
    if config.mode == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif config.mode == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = config.representative_dataset
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.int8
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


def tiny_scales(model_bytes: bytes, threshold: float = 1e-6) -> list[tuple[str, float]]:
    """Quantized tensors whose scale is degenerate (a layer that never fired on the representative set)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    out = []
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        # activations are quantized per tensor (one scale); weights per channel
        if t["dtype"] in (np.int8, np.uint8) and len(scales) == 1 and float(scales[0]) < threshold:
            out.append((t["name"], float(np.min(scales))))
    return out
