"""Load a TFLite interpreter: LiteRT first, the old tflite-runtime second, TensorFlow's last.

The edge path never imports TensorFlow when a standalone runtime is installed.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.model.contract import ContractError

__all__ = ["RUNTIMES", "RuntimeMissingError", "TFLiteModel", "load_interpreter_class"]

log = logging.getLogger(__name__)

# (module, attribute path) in order of preference.
RUNTIMES: tuple[tuple[str, str], ...] = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow", "lite.Interpreter"),
)


class RuntimeMissingError(RuntimeError):
    """No TFLite interpreter is installed."""


def load_interpreter_class(preference: Sequence[tuple[str, str]] | None = None) -> tuple[type, str]:
    """Return (Interpreter class, module name) of the first runtime that imports.

    ``preference`` defaults to :data:`RUNTIMES`, read at call time (so tests can patch it).
    """
    if preference is None:
        preference = RUNTIMES
    tried = []
    for module_name, attr in preference:
        try:
            obj = importlib.import_module(module_name)
        except ImportError:
            tried.append(module_name.split(".")[0])
            continue
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj, module_name.split(".")[0]
    raise RuntimeMissingError(
        f"no TFLite runtime found (tried {', '.join(tried)}); install one with `pip install ai-edge-litert`"
    )


class TFLiteModel:
    """A TFLite model with one input and one output (and optionally a second, its pooled features), fed
    uint8 or float pixels, read as float.

    Quantized inputs and outputs are (de)quantized with the tensor's own scale and zero point.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        interpreter_cls, self.runtime = load_interpreter_class()
        try:
            self._interp = interpreter_cls(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ContractError(f"{path} is not a usable TFLite model: {str(exc).splitlines()[0]}") from exc
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) not in (1, 2):
            raise ContractError(
                f"{path} must have one input and one output (and its features), has {len(inputs)} and {len(outputs)}"
            )
        self.input, self.output = inputs[0], outputs[0]
        self.features_output = outputs[1] if len(outputs) == 2 else None
        self.path = path
        self.last_invoke_ms = 0.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input["shape"])

    def _quantize_input(self, batch: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        scale, zero = self.input["quantization"]
        if dtype == np.float32:
            return batch.astype(np.float32)
        if dtype == np.uint8 and batch.dtype == np.uint8 and (scale, zero) in ((1.0, 0), (0.0, 0)):
            return batch  # camera pixels go in as they are
        info = np.iinfo(dtype)
        q = np.round(batch.astype(np.float32) / scale + zero)
        return np.clip(q, info.min, info.max).astype(dtype)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Run one HWC image (uint8 0-255) and return the output as float32 (batch dim dropped)."""
        self._interp.set_tensor(self.input["index"], self._quantize_input(image[None]))
        start = time.perf_counter()
        self._interp.invoke()
        self.last_invoke_ms = (time.perf_counter() - start) * 1000.0
        return self._read(self.output)

    def features(self) -> np.ndarray | None:
        """The second output (pooled features) of the last call, as float32; None when the file has none."""
        return None if self.features_output is None else self._read(self.features_output)

    def _read(self, detail: dict) -> np.ndarray:
        out = self._interp.get_tensor(detail["index"])[0]
        scale, zero = detail["quantization"]
        if out.dtype != np.float32:
            out = (out.astype(np.float32) - zero) * scale
        return out
