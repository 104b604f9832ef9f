"""Calibrate the converted model itself: its logits are not the Keras model's.

Training fits the temperature and the malignancy threshold on the validation split for the Keras
model. The file that ships is the converted one, whose logits differ (int8 most of all), so both
are fitted again on its own validation logits: the temperature by negative log-likelihood, the
threshold so that the malignant sensitivity the Keras model had at its threshold is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.model.calibration import (
    cross_fitted_ece,
    expected_calibration_error,
    fit_temperature,
    risk_threshold_for_sensitivity,
)
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import ModelContract

__all__ = ["recalibrate"]


def _risk(probs: np.ndarray, contract: ModelContract) -> np.ndarray:
    return probs[:, list(contract.malignant_indices)].sum(1)


def recalibrate(
    contract: ModelContract,
    keras_logits: np.ndarray,
    converted_logits: np.ndarray,
    y: np.ndarray,
    threshold_on: np.ndarray | None = None,
    sensitivity: float = 0.9,
) -> tuple[ModelContract, dict[str, Any]]:
    """The contract with temperature (and risk threshold) fitted to ``converted_logits``; and a report.

    With ``threshold_on`` (a mask of the validation images) the threshold is set for ``sensitivity`` on
    those images alone, e.g. the collections most like the kiosk's camera; otherwise it keeps the
    sensitivity the Keras model had at its threshold on every validation image.
    """
    temperature = fit_temperature(converted_logits, y)
    probs = calibrated_probabilities(converted_logits, temperature)
    report: dict[str, Any] = {
        "temperature_keras": contract.temperature,
        "temperature": round(temperature, 4),
        "ece_before": expected_calibration_error(calibrated_probabilities(converted_logits, contract.temperature), y),
        "ece_crossfit": cross_fitted_ece(converted_logits, y),
    }
    changes: dict[str, Any] = {"temperature": round(temperature, 4)}
    is_malignant = np.isin(y, contract.malignant_indices)
    if contract.malignant_indices and 0 < is_malignant.sum() < len(y):
        at = threshold_on
        if at is None:  # every validation image, at the sensitivity the Keras model has there
            at = np.ones(len(y), bool)
            keras_risk = _risk(calibrated_probabilities(keras_logits, contract.temperature), contract)
            sensitivity = float(np.mean(keras_risk[is_malignant] >= contract.risk_threshold))
        threshold = risk_threshold_for_sensitivity(_risk(probs, contract)[at], is_malignant[at], sensitivity)
        changes["risk_threshold"] = float(np.floor(threshold * 1e4) / 1e4)  # rounding up could unflag a case
        report.update(risk_threshold_keras=contract.risk_threshold, risk_threshold=changes["risk_threshold"],
                      malignant_sensitivity=sensitivity, threshold_images=int(at.sum()))  # fmt: skip
    return contract.replace(**changes), report
