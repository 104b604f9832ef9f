"""One config, one set of defaults: ``train DATA`` builds what ``train(TrainConfig(data, out))`` builds, and
``--task segment`` refuses the options it would otherwise drop."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from training import cli
from training.config import SegmentConfig, TrainConfig, config_from

pytest.importorskip("tensorflow")  # the command imports it before building the config


@pytest.fixture
def captured(monkeypatch):
    """Runs of ``train`` and ``train_segmenter`` recorded instead of trained."""
    import training.segment.train
    import training.train

    seen: list = []

    def record(config):
        seen.append(config)
        return Path(config.out)

    monkeypatch.setattr(training.train, "train", record)
    monkeypatch.setattr(training.segment.train, "train_segmenter", record)
    return seen


def test_the_command_defaults_are_the_configs(tmp_path, captured):
    result = CliRunner().invoke(cli.main, [str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert captured == [TrainConfig(data=str(tmp_path.resolve()), out=str(tmp_path / "run"))]
    result = CliRunner().invoke(
        cli.main, [str(tmp_path), "--out", "r", "--img-size", "160", "--color-constancy", "none"]
    )
    assert result.exit_code == 0, result.output
    assert captured[1] == TrainConfig(data=str(tmp_path.resolve()), out="r", image_size=160, color_constancy="none")


def test_the_segmenter_has_its_own_defaults_and_refuses_classifier_options(tmp_path, captured):
    result = CliRunner().invoke(cli.main, [str(tmp_path), "--task", "segment", "--out", "seg", "--epochs", "5"])
    assert result.exit_code == 0, result.output
    assert captured == [SegmentConfig(data=str(tmp_path), out="seg", epochs=5)]
    assert captured[0].image_size == 224 and captured[0].arch == "small"
    for option, value in (("--test-fraction", "0.2"), ("--color-constancy", "none"), ("--balance", "none"),
                          ("--format", "folder")):  # fmt: skip
        result = CliRunner().invoke(cli.main, [str(tmp_path), "--task", "segment", option, value])
        assert result.exit_code == 2 and f"{option} applies to classifiers" in result.output, result.output
    result = CliRunner().invoke(cli.main, [str(tmp_path), "--task", "segment", "--mixed-precision"])
    assert result.exit_code == 2 and "--mixed-precision applies to classifiers" in result.output
    assert len(captured) == 1
    result = CliRunner().invoke(cli.main, [str(tmp_path), "--task", "segment", "--out", "seg", "--strategy", "one"])
    assert result.exit_code == 0 and captured[1].strategy == "one"  # the shared fit loop: any strategy


def test_a_saved_config_reads_back_as_it_was():
    config = TrainConfig(data="a", out="b", more_data=("c", "d"), image_size=224)
    import dataclasses
    import json

    saved = json.loads(json.dumps(dataclasses.asdict(config) | {"unknown": 1}))
    assert config_from(TrainConfig, saved) == config
    assert config_from(TrainConfig, saved, out="e").out == "e"
