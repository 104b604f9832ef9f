"""Several collections in one run: one taxonomy, copies kept on one side across collections, a fixed test part."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import make_folder_dataset
from tests.conftest import run_command as _run
from training.splits import split_indices
from training.train import TrainConfig, split_parts


def test_the_parts_are_fixed_across_seeds_and_no_group_crosses_a_part():
    rng = np.random.default_rng(0)
    y, origin = rng.integers(0, 3, 600), np.repeat([0, 1], 300)
    groups = np.arange(600) // 3  # lesions of three images
    parts = [split_parts(y, origin, groups, TrainConfig(data="-", out="-", seed=s, test_fraction=0.2)) for s in (0, 1)]
    assert np.array_equal(parts[0][2], parts[1][2])  # the same test images whatever the seed
    assert np.array_equal(parts[0][1], parts[1][1])  # and the same validation images
    for train, val, test in parts:
        assert len(train) + len(val) + len(test) == 600
        for a, b in ((train, val), (train, test), (val, test)):
            assert not set(groups[a]) & set(groups[b])
        for c in (0, 1):  # every collection gets its share of the test part
            assert abs((origin[test] == c).sum() / 300 - 0.2) < 0.05
        assert abs(len(val) / 600 - 0.2) < 0.04
    # one collection and no test part: the split is the one a single DATA always had
    train, val, test = split_parts(y, np.zeros(600, int), groups, TrainConfig(data="-", out="-", seed=3))
    expected = split_indices(y, groups, 0.2, 0)  # whatever --seed
    assert np.array_equal(train, expected[0]) and np.array_equal(val, expected[1]) and len(test) == 0


@pytest.mark.slow
@pytest.mark.training
def test_two_collections_train_on_one_taxonomy_and_are_reported_apart(tmp_path):
    a = make_folder_dataset(tmp_path / "a", classes=("melanoma", "nevus", "seborrheic keratosis"), per_class=8)
    b = make_folder_dataset(tmp_path / "b", classes=("mel", "nv", "bkl"), per_class=8, seed=1)
    copies = sorted(a.glob("melanoma/*.jpg"))[:4]
    for image in copies:  # the same photographs in the second collection, under other names
        shutil.copy(image, b / "mel" / f"copy_{image.name}")
    run = tmp_path / "run"
    _run("train", str(a), str(b), "--out", str(run), "--weights", "none", "--img-size", "32", "--epochs", "1",
         "--head-epochs", "0", "--batch-size", "4", "--test-fraction", "0.2")  # fmt: skip
    assert json.loads((run / "contract.json").read_text())["labels"] == ["BKL", "MEL", "NV"]  # ISIC 2019's names
    split = json.loads((run / "split.json").read_text())
    side = {path: part for part in ("train", "validation", "test") for path in split[part]}
    for image in copies:
        assert side[str(image.resolve())] == side[str((b / "mel" / f"copy_{image.name}").resolve())]
    assert len(side) == sum(len(split[p]) for p in ("train", "validation", "test"))  # no image in two parts
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["collections"]) == {str(a.resolve()), str(b.resolve())}
    for scores in metrics["collections"].values():
        assert {"validation", "test"} <= set(scores) and scores["test"]["n"] > 0
    assert metrics["n_test"] == len(split["test"]) and metrics["test"]["n"] == metrics["n_test"]


@pytest.mark.slow
@pytest.mark.training
def test_train_on_trains_on_one_collection_while_both_are_validated_and_tested(tmp_path):
    a = make_folder_dataset(tmp_path / "a", classes=("mel", "nv"), per_class=8)
    b = make_folder_dataset(tmp_path / "b", classes=("mel", "nv"), per_class=8, seed=1)
    run = tmp_path / "run"
    _run("train", str(a), str(b), "--train-on", str(b), "--out", str(run), "--weights", "none", "--img-size", "32",
         "--epochs", "1", "--head-epochs", "0", "--batch-size", "4", "--test-fraction", "0.2")  # fmt: skip
    split = json.loads((run / "split.json").read_text())
    assert split["train"] and all(p.startswith(str(b.resolve())) for p in split["train"])
    for part in ("validation", "test"):  # the split of both collections, as without --train-on
        assert {p.startswith(str(a.resolve())) for p in split[part]} == {True, False}
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"trained on the training part of `{b.resolve()}` only" in (run / "model_card.md").read_text()
    assert metrics["n_train"] == len(split["train"]) and set(metrics["collections"]) == {
        str(a.resolve()),
        str(b.resolve()),
    }


def test_train_on_a_collection_that_is_not_data_is_a_usage_error(tmp_path):
    from click.testing import CliRunner

    from training.cli import main

    a = make_folder_dataset(tmp_path / "a", classes=("mel", "nv"), per_class=2)
    result = CliRunner().invoke(main, [str(a), "--train-on", str(tmp_path / "elsewhere")])
    assert result.exit_code == 2 and "is not one of the DATA collections" in result.output
