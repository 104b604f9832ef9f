"""`train --weights RUN`: a second stage starts from a run's trained backbone, at another input size."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.training
keras = pytest.importorskip("keras")

from edge.model.contract import ModelContract, save_contract  # noqa: E402
from tests.conftest import make_folder_dataset  # noqa: E402
from training.cli import main  # noqa: E402
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


def test_a_second_stage_that_would_hold_out_the_first_stages_training_images_stops(tmp_path, monkeypatch):
    """Scored on images its backbone trained on, a second stage would flatter itself: one sentence instead."""
    monkeypatch.setenv("SKINEDGE_CACHE", str(tmp_path / "cache" / "images"))
    run, _ = _run(tmp_path)
    data = make_folder_dataset(tmp_path / "d", classes=("a", "b", "c"), per_class=8)
    everything = sorted(str(p.resolve()) for p in data.rglob("*.jpg"))
    (run / "split.json").write_text(json.dumps({"train": everything, "validation": []}))  # the first stage saw all
    args = [str(data), "--arch", "small", "--weights", str(run), "--img-size", "64", "--epochs", "0",
            "--head-epochs", "0", "--out", str(tmp_path / "second")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "trained the backbone of" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "second" / "model.keras").exists()
