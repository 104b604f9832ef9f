"""convert's data: the run's own validation split, found whatever the working directory; a changed dataset fails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from convert.representative import RepresentativeError, load_convert_data, recorded_data
from edge.model.contract import ModelContract
from tests.conftest import TINY_LABELS, make_folder_dataset


def _run_folder(tmp_path: Path, data: Path, validation: list[Path]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"config": {"data": str(data.resolve())}}))
    (run / "split.json").write_text(json.dumps({"validation": [str(p.resolve()) for p in validation]}))
    return run


def _run_of_two(tmp_path: Path, data: Path, other: Path, validation: list[Path]) -> Path:
    """A run folder of a run that trained on ``data`` and ``other`` together."""
    run = _run_folder(tmp_path, data, validation)
    config = {"data": str(data.resolve()), "more_data": [str(other.resolve())]}
    (run / "metrics.json").write_text(json.dumps({"config": config}))
    return run


def test_the_runs_validation_images_are_found_from_a_relative_path(tmp_path, monkeypatch):
    data = make_folder_dataset(tmp_path / "data", per_class=5)
    validation = sorted(data.glob("*/*_000.jpg"))
    run = _run_folder(tmp_path, data, validation)
    assert recorded_data(run) == data.resolve()
    monkeypatch.chdir(tmp_path)  # convert run elsewhere than train, DATA given relative
    contract = ModelContract(task="classify", labels=tuple(sorted(TINY_LABELS)), image_size=32)
    got = load_convert_data(Path("data"), contract, run, samples=10)
    assert len(got.validation) == len(validation) == 3  # the run's split, not a new one
    assert len(got.representative) == 10


def test_a_dataset_that_lost_validation_images_since_training_is_refused(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=5)
    validation = sorted(data.glob("*/*_000.jpg"))
    run = _run_folder(tmp_path, data, validation)
    os.remove(validation[0])
    contract = ModelContract(task="classify", labels=tuple(sorted(TINY_LABELS)), image_size=32)
    with pytest.raises(RepresentativeError, match="1 of the 3 validation images of .* are no longer there"):
        load_convert_data(data, contract, run, samples=10)


def test_validation_images_of_the_runs_other_collections_are_not_missing(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=5)
    other = make_folder_dataset(tmp_path / "other", per_class=2, seed=1)
    validation = sorted(data.glob("*/*_000.jpg")) + sorted(other.glob("*/*_000.jpg"))
    run = _run_folder(tmp_path, data, validation)
    contract = ModelContract(task="classify", labels=tuple(sorted(TINY_LABELS)), image_size=32)
    got = load_convert_data(data, contract, run, samples=10)
    assert len(got.validation) == 3  # DATA's part of the split; the other collection's are elsewhere


def test_a_multi_collection_run_validates_on_every_collection_and_never_calibrates_on_its_test_part(tmp_path):
    data = make_folder_dataset(tmp_path / "data", classes=("melanoma", "nevus"), per_class=5)
    other = make_folder_dataset(tmp_path / "other", classes=("melanoma", "nevus"), per_class=5, seed=1)
    validation = sorted(data.glob("*/*_000.jpg")) + sorted(other.glob("*/*_000.jpg"))
    test = sorted(data.glob("*/*_001.jpg")) + sorted(other.glob("*/*_001.jpg"))
    run = _run_of_two(tmp_path, data, other, validation)
    split = json.loads((run / "split.json").read_text()) | {"test": [str(p.resolve()) for p in test]}
    (run / "split.json").write_text(json.dumps(split))
    contract = ModelContract(task="classify", labels=("MEL", "NV"), image_size=32)  # ISIC 2019's names
    got = load_convert_data(data, contract, run, samples=100)
    assert len(got.validation) == 4 and sorted(got.validation_labels.tolist()) == [0, 0, 1, 1]
    assert len(got.representative) == 20 - 4 - 4  # every training image, no validation or test image


def test_a_run_trained_on_some_collections_draws_its_representative_images_from_those_only(tmp_path):
    data = make_folder_dataset(tmp_path / "data", classes=("melanoma", "nevus"), per_class=5)
    other = make_folder_dataset(tmp_path / "other", classes=("melanoma", "nevus"), per_class=8, seed=1)
    validation = sorted(data.glob("*/*_000.jpg")) + sorted(other.glob("*/*_000.jpg"))
    run = _run_of_two(tmp_path, data, other, validation)
    trained = [str(p.resolve()) for p in sorted(other.glob("*/*.jpg")) if p not in validation]  # `--train-on other`
    split = json.loads((run / "split.json").read_text()) | {"train": trained}
    (run / "split.json").write_text(json.dumps(split))
    contract = ModelContract(task="classify", labels=("MEL", "NV"), image_size=32)
    got = load_convert_data(data, contract, run, samples=100, with_training=True)
    assert len(got.validation) == 4  # both collections' validation parts
    assert len(got.representative) == len(got.training) == len(trained) == 14


def test_the_threshold_images_are_the_validation_images_of_the_collections_named(tmp_path):
    data = make_folder_dataset(tmp_path / "data", classes=("melanoma", "nevus"), per_class=5)
    other = make_folder_dataset(tmp_path / "other", classes=("melanoma", "nevus"), per_class=5, seed=1)
    validation = sorted(data.glob("*/*_000.jpg")) + sorted(other.glob("*/*_00[01].jpg"))
    run = _run_of_two(tmp_path, data, other, validation)
    contract = ModelContract(task="classify", labels=("MEL", "NV"), image_size=32, malignant_labels=("MEL",))
    got = load_convert_data(data, contract, run, samples=8, threshold_on=(other,))
    assert len(got.validation) == 6 and got.threshold_on.tolist().count(True) == 4
    assert load_convert_data(data, contract, run, samples=8).threshold_on is None
    benign_only = ModelContract(task="classify", labels=("MEL", "NV"), image_size=32)
    with pytest.raises(RepresentativeError, match="no malignant classes"):
        load_convert_data(data, benign_only, run, samples=8, threshold_on=(other,))
