"""Activation ranges for int8 conversion, measured without the calibrator's in-place aliasing.

TFLite's calibrator logs every op's inputs *after* the op has run, and the interpreter runs ADD and
MUL in place when an input is read by that op alone: the output overwrites it. Such an input is
then logged holding the op's output, so its stored range becomes the union of both. In
MobileNetV3 that widens the input rescaling ``x / 127.5`` from [0, 2] to [-1, 2], every residual
branch to its sum's range and, in the decomposed hard-swish ``(x / 6) * relu6(x + 3)``, ``x / 6`` to
the whole range of the output: a third to four fifths of those tensors' int8 levels wasted
(docs/BENCHMARKS.md). ``measured_ranges`` replaces the calibrated ranges with ones measured again on
the same representative images, every intermediate tensor kept (no in-place reuse).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import numpy as np

__all__ = ["measured_ranges", "remeasure"]


@contextlib.contextmanager
def measured_ranges() -> Iterator[None]:
    """Within this block, the TFLite converter's calibration returns re-measured ranges.

    It wraps a private TensorFlow class (stable over the 2.16-2.21 range pyproject allows);
    ``tests/convert/test_quantize.py`` fails if the wrapping stops taking effect.
    """
    from tensorflow.lite.python.optimize import calibrator

    original = calibrator.Calibrator.calibrate

    def calibrate(self, dataset_gen: Callable[[], Iterable]):
        return remeasure(original(self, dataset_gen), dataset_gen)

    calibrator.Calibrator.calibrate = calibrate
    try:
        yield
    finally:
        calibrator.Calibrator.calibrate = original


def remeasure(calibrated: bytes, dataset_gen: Callable[[], Iterable]) -> bytes:
    """``calibrated`` (a float model carrying min / max per tensor) with every logged range measured again.

    ``dataset_gen`` yields the same samples the calibrator saw (a list of input arrays each).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    logged = [i for i, t in enumerate(tensors) if t.quantization is not None and t.quantization.min is not None]
    interpreter = Interpreter(
        model_content=bytes(calibrated),
        experimental_preserve_all_tensors=True,  # also turns off in-place execution
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    inputs = [d["index"] for d in interpreter.get_input_details()]
    interpreter.allocate_tensors()
    lo = {i: np.inf for i in logged}
    hi = {i: -np.inf for i in logged}
    for sample in dataset_gen():
        for index, array in zip(inputs, sample):
            array = np.asarray(array, dtype=np.float32)
            if tuple(interpreter.get_tensor(index).shape) != array.shape:
                interpreter.resize_tensor_input(index, array.shape)
                interpreter.allocate_tensors()
            interpreter.set_tensor(index, array)
        interpreter.invoke()
        for i in logged:
            values = interpreter.get_tensor(i)
            lo[i], hi[i] = min(lo[i], float(values.min())), max(hi[i], float(values.max()))
    for i in logged:
        if np.isfinite(lo[i]):
            tensors[i].quantization.min, tensors[i].quantization.max = [lo[i]], [hi[i]]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
