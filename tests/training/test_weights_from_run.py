"""`train --weights RUN`: a second stage starts from a run's trained backbone, at another input size."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.training
keras = pytest.importorskip("keras")

from edge.model.contract import ModelContract, save_contract  # noqa: E402
from training.model import build_classifier, resolve_weights  # noqa: E402


def _run(tmp_path, arch: str = "small"):
    model, backbone = build_classifier(3, 64, arch, None)
    for w in backbone.weights:  # not the initialiser's values: "trained"
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32"))
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    labels = ("a", "b", "c")
    save_contract(ModelContract(task="classify", labels=labels, arch=f"mobilenet_v3_{arch}", image_size=64),
                  run / "contract.json")  # fmt: skip
    return run, backbone


def test_a_run_gives_its_trained_backbone_at_another_input_size(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINEDGE_CACHE", str(tmp_path / "cache" / "images"))
    run, trained = _run(tmp_path)
    weights = resolve_weights(str(run), "small")
    assert weights.endswith(".weights.h5")
    _, second = build_classifier(3, 96, "small", weights)
    assert len(second.weights) == len(trained.weights)
    for a, b in zip(trained.weights, second.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resolve_weights(str(run), "small") == weights  # written once


def test_a_run_of_another_backbone_or_no_run_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("SKINEDGE_CACHE", str(tmp_path / "cache" / "images"))
    run, _ = _run(tmp_path)
    with pytest.raises(FileNotFoundError, match="not --arch large-minimalistic"):
        resolve_weights(str(run), "large-minimalistic")
    with pytest.raises(FileNotFoundError, match="not a train run folder"):
        resolve_weights(str(tmp_path), "small")
