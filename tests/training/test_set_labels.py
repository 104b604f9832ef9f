"""Benign/malignant labels train an eight-class model: the set-valued loss and a run on every collection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.model.contract import ModelContract
from tests.conftest import make_folder_dataset
from tests.conftest import run_command as _run
from training.labels import allowed_classes, malignant_rows

CONTRACT = ModelContract(task="classify", labels=("AK", "BKL", "MEL", "NV"), malignant_labels=("AK", "MEL"))


def test_a_set_label_allows_its_group_of_classes_and_a_class_label_itself():
    table = allowed_classes(("AK", "BKL", "MEL", "NV", "benign", "malignant"), CONTRACT)
    np.testing.assert_array_equal(table[:4], np.eye(4))
    np.testing.assert_array_equal(table[4], [0, 1, 0, 1])
    np.testing.assert_array_equal(table[5], [1, 0, 1, 0])
    assert malignant_rows(table, CONTRACT).tolist() == [True, False, True, False, False, True]
    with pytest.raises(ValueError, match="lentigo"):
        allowed_classes(("lentigo",), CONTRACT)
    with pytest.raises(ValueError, match="benign"):  # no malignant classes: a set label means nothing
        allowed_classes(("benign",), ModelContract(task="classify", labels=("a", "b")))


def test_the_set_valued_loss_is_cross_entropy_on_one_class_and_the_groups_log_probability_on_a_set():
    pytest.importorskip("tensorflow")
    import keras

    from training.labels import set_valued_crossentropy

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (6, 4)).astype("float32")
    table = allowed_classes(("AK", "BKL", "MEL", "NV", "benign", "malignant"), CONTRACT)
    loss = np.asarray(set_valued_crossentropy(table, logits))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    cross_entropy = np.asarray(keras.losses.categorical_crossentropy(table[:4], logits[:4], from_logits=True))
    np.testing.assert_allclose(loss[:4], cross_entropy, rtol=1e-5)
    np.testing.assert_allclose(loss[4], -np.log(p[4, [1, 3]].sum()), rtol=1e-5)  # benign: BKL or NV
    np.testing.assert_allclose(loss[5], -np.log(p[5, [0, 2]].sum()), rtol=1e-5)  # malignant: AK or MEL
    # a benign image is not pushed towards one benign class: how BKL and NV share the mass costs nothing
    split = np.log(np.array([[0.1, 0.6, 0.1, 0.2], [0.1, 0.2, 0.1, 0.6]], "float32"))
    twice = np.asarray(set_valued_crossentropy(table[[4, 4]], split))
    np.testing.assert_allclose(twice, -np.log(0.8), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.training
def test_a_benign_malignant_collection_trains_beside_class_labelled_ones_and_is_scored_by_malignancy(tmp_path):
    classes = make_folder_dataset(tmp_path / "classes", classes=("melanoma", "nevus", "seborrheic keratosis"),
                                  per_class=10)  # fmt: skip
    binary = make_folder_dataset(tmp_path / "binary", classes=("benign", "malignant"), per_class=10, seed=1)
    run = tmp_path / "run"
    _run("train", str(classes), str(binary), "--out", str(run), "--weights", "none", "--img-size", "32",
         "--epochs", "1", "--head-epochs", "0", "--batch-size", "4", "--test-fraction", "0.2")  # fmt: skip
    assert json.loads((run / "contract.json").read_text())["labels"] == ["BKL", "MEL", "NV"]
    split = json.loads((run / "split.json").read_text())
    trained_on = {p.split("/")[-2] for p in split["train"]}
    assert {"benign", "malignant"} <= trained_on  # the binary images trained the eight-class model
    assert {"benign", "malignant"} & set(split["validation_labels"])
    metrics = json.loads((run / "metrics.json").read_text())
    by_malignancy = metrics["collections"][str(binary.resolve())]["test"]
    assert set(by_malignancy) == {"n", "malignant_auc", "malignant_auc_ci", "malignant_sensitivity",
                                  "malignant_specificity"}  # fmt: skip
    assert 0 <= by_malignancy["malignant_auc"] <= 1
    assert "balanced_accuracy" in metrics["collections"][str(classes.resolve())]["test"]
    assert set(metrics["validation"]["per_class"]) == {"BKL", "MEL", "NV"}  # class metrics: class labels only
