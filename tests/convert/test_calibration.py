import numpy as np
import pytest

from convert.calibration import recalibrate
from edge.model.calibration import fit_temperature
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import ModelContract


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 600)
    logits = rng.normal(0, 1, (600, 3))
    logits[np.arange(600), y] += 1.5  # informative, roughly calibrated at T = 1
    return logits, y


def test_an_overconfident_conversion_gets_its_own_temperature_and_keeps_sensitivity():
    logits, y = _data()
    contract = ModelContract(task="classify", labels=("a", "b", "c"), image_size=32, malignant_labels=("c",),
                             temperature=1.0, risk_threshold=0.3)  # fmt: skip
    converted = 2.5 * logits  # same ranking, 2.5x too confident
    new, report = recalibrate(contract, logits, converted, y)
    assert new.temperature == pytest.approx(2.5 * fit_temperature(logits, y), rel=0.02)
    assert report["ece_crossfit"] < report["ece_before"]
    is_mal = y == 2
    keras_sens = np.mean(calibrated_probabilities(logits, 1.0)[is_mal, 2] >= 0.3)
    new_sens = np.mean(calibrated_probabilities(converted, new.temperature)[is_mal, 2] >= new.risk_threshold)
    assert report["malignant_sensitivity"] == keras_sens and new_sens >= keras_sens
    assert new.labels == contract.labels and new.image_size == 32


def test_without_malignant_classes_only_the_temperature_changes():
    logits, y = _data(1)
    contract = ModelContract(task="classify", labels=("a", "b", "c"), image_size=32, risk_threshold=0.5)
    new, report = recalibrate(contract, logits, logits, y)
    assert new.risk_threshold == 0.5 and "risk_threshold" not in report
    assert 0.5 < new.temperature < 2.0


def test_a_threshold_set_on_some_images_gives_the_target_sensitivity_there_not_everywhere():
    logits, y = _data(2)
    sharp = np.arange(600) < 200
    logits[sharp & (y == 2), 2] -= 1.0  # the malignant cases of these images look less malignant
    contract = ModelContract(task="classify", labels=("a", "b", "c"), image_size=32, malignant_labels=("c",),
                             temperature=1.0, risk_threshold=0.3)  # fmt: skip
    everywhere, _ = recalibrate(contract, logits, logits, y, sensitivity=0.9)
    there, report = recalibrate(contract, logits, logits, y, threshold_on=sharp, sensitivity=0.9)
    risk = calibrated_probabilities(logits, there.temperature)[:, 2]
    assert report["threshold_images"] == 200 and report["malignant_sensitivity"] == 0.9
    assert np.mean(risk[sharp & (y == 2)] >= there.risk_threshold) >= 0.9
    assert there.risk_threshold < everywhere.risk_threshold  # lower, to catch the harder cases
    flagged_before = np.mean(risk[sharp & (y == 2)] >= everywhere.risk_threshold)
    assert flagged_before < 0.9


def test_a_keras_model_that_flagged_nothing_still_gets_a_threshold_that_flags_its_riskiest_case():
    logits, y = _data()
    contract = ModelContract(task="classify", labels=("a", "b", "c"), image_size=32, malignant_labels=("c",),
                             temperature=1.0, risk_threshold=1.0)  # fmt: skip  # flags no validation image
    new, report = recalibrate(contract, logits, logits, y)
    risk = calibrated_probabilities(logits, new.temperature)[y == 2, 2]
    assert report["malignant_sensitivity"] == 0.0 and (risk >= new.risk_threshold).sum() >= 1
