"""A run folder is written and read back in one place: what train writes, resume, convert and bench read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edge.model.contract import ModelContract
from training.config import SegmentConfig, TrainConfig
from training.runfolder import RunFolder


class _Model:
    def save(self, path: Path) -> None:
        Path(path).write_bytes(b"keras")


def test_a_written_run_reads_back(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="is not a train run folder"):
        folder.require()
    assert folder.split() is None and folder.metrics() == {} and folder.collections() == []
    with pytest.raises(FileNotFoundError, match="records no configuration"):
        folder.config()

    config = TrainConfig(data=str(tmp_path / "a"), out=str(folder.path), more_data=(str(tmp_path / "b"),), seed=3)
    contract = ModelContract(task="classify", labels=("MEL", "NV"), malignant_labels=("MEL",))
    split = {"train": ["x.jpg"], "validation": ["y.jpg"], "test": ["z.jpg"]}
    folder.write_model(_Model(), contract, split)
    folder.write_metrics({"config": dataclasses.asdict(config), "best_epoch": 2})

    assert folder.require().is_finished() and folder.model_file.read_bytes() == b"keras"
    assert folder.contract().labels == ("MEL", "NV") and folder.split() == split
    assert folder.config() == config and folder.metrics()["best_epoch"] == 2
    assert folder.collections() == [tmp_path / "a", tmp_path / "b"]
    assert folder.trained_on(tmp_path / "a") and not folder.trained_on(tmp_path / "b")


def test_a_segmenter_run_reads_back_as_its_own_config(tmp_path):
    config = SegmentConfig(data=str(tmp_path), out=str(tmp_path / "seg"), epochs=5)
    folder = RunFolder(config.out)
    folder.path.mkdir()
    folder.write_metrics({"config": dataclasses.asdict(config)})
    assert folder.config(SegmentConfig) == config
