"""Calibration arithmetic, NumPy only: temperature scaling, calibration error, the malignancy operating point.

One home for training (the Keras model on validation), conversion (the converted file on the same
images) and the kiosk's own recalibration on a clinic's labelled images (no TensorFlow there).
"""

from __future__ import annotations

import numpy as np

from edge.model.classifier import calibrated_probabilities

__all__ = [
    "cross_fitted_ece",
    "expected_calibration_error",
    "fit_temperature",
    "proportion_interval",
    "risk_threshold_for_sensitivity",
]


def fit_temperature(logits: np.ndarray, y: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature T in [low, high] minimising the negative log-likelihood of softmax(logits / T).

    The NLL is convex in 1/T, so a golden-section search over log T finds the minimum.
    """

    def nll(log_t: float) -> float:
        p = calibrated_probabilities(logits, float(np.exp(log_t)))
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    g = (np.sqrt(5.0) - 1) / 2
    a, b = np.log(low), np.log(high)
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > 1e-5:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Top-1 expected calibration error with equal-width confidence bins."""
    conf = probs.max(1)
    correct = probs.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def cross_fitted_ece(logits: np.ndarray, y: np.ndarray, seed: int = 0) -> float:
    """ECE after temperature scaling, fitting T on one half of the data and measuring on the other."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    halves = order[: len(y) // 2], order[len(y) // 2 :]
    eces, weights = [], []
    for fit, test in (halves, halves[::-1]):
        t = fit_temperature(logits[fit], y[fit])
        eces.append(expected_calibration_error(calibrated_probabilities(logits[test], t), y[test]))
        weights.append(len(test))
    return float(np.average(eces, weights=weights))


def risk_threshold_for_sensitivity(risk: np.ndarray, is_malignant: np.ndarray, sensitivity: float = 0.9) -> float:
    """The highest risk threshold that still flags ``sensitivity`` of the malignant cases, and never one
    that flags none of them (a model that flagged none on validation asks for sensitivity 0)."""
    pos = np.sort(risk[is_malignant.astype(bool)])
    if len(pos) == 0:
        return 0.5
    k = min(int(np.floor((1 - sensitivity) * len(pos))), len(pos) - 1)
    return float(pos[k])


def proportion_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) for k successes in n trials: how far a sensitivity
    measured on n malignant cases can be trusted. Sound for small n and for k = 0 or k = n."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))
