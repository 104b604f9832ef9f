from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from edge.model import runtime
from edge.model.runtime import RuntimeMissingError, TFLiteModel, load_interpreter_class


def test_first_importable_runtime_wins(monkeypatch):
    monkeypatch.setattr(
        runtime,
        "RUNTIMES",
        (("no_such_runtime_xyz.interpreter", "Interpreter"), ("ai_edge_litert.interpreter", "Interpreter")),
    )
    cls, name = load_interpreter_class()
    assert name == "ai_edge_litert" and cls.__name__ == "Interpreter"


def test_order_is_respected(monkeypatch):
    fake = types.ModuleType("fake_tflite_rt")
    fake.Interpreter = type("Interpreter", (), {})
    monkeypatch.setitem(sys.modules, "fake_tflite_rt", fake)
    monkeypatch.setattr(
        runtime, "RUNTIMES", (("fake_tflite_rt", "Interpreter"), ("ai_edge_litert.interpreter", "Interpreter"))
    )
    assert load_interpreter_class() == (fake.Interpreter, "fake_tflite_rt")


def test_all_missing_says_what_was_tried_and_what_to_install(monkeypatch):
    monkeypatch.setattr(runtime, "RUNTIMES", (("nope_a.interpreter", "Interpreter"), ("nope_b", "lite.Interpreter")))
    with pytest.raises(RuntimeMissingError, match=r"tried nope_a, nope_b.*pip install ai-edge-litert"):
        load_interpreter_class()


def test_model_runs_on_the_fallback(monkeypatch, tiny_tflite):
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)  # not installed
    monkeypatch.setattr(
        runtime,
        "RUNTIMES",
        (("tflite_runtime.interpreter", "Interpreter"), ("ai_edge_litert.interpreter", "Interpreter")),
    )
    model = TFLiteModel(tiny_tflite, threads=1)
    assert model.runtime == "ai_edge_litert"
    out = model(np.zeros((64, 64, 3), np.uint8))
    assert out.shape == (3,) and out.dtype == np.float32 and model.last_invoke_ms > 0
