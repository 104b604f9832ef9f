"""Screen one idea without training: per-class offsets that trade recall between classes for balanced accuracy.

    python bench/offsets_screen.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2 runs/isic8_s3 runs/isic8_s4

For each run's int8 file, offsets are added to its calibrated log-probabilities before the top-1 label
is taken (the malignancy risk and flag are untouched). They are fitted on the run's validation images
to maximise balanced accuracy (coordinate ascent on a grid, pooled validation), then the label's
balanced accuracy with and without them is scored on each collection's test part.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recipe import int8_probabilities, scored_sets, validation_part
from results import screen_runs

from edge.model.classifier import Classifier
from training.runfolder import RunFolder

GRID = np.round(np.arange(-2.0, 2.01, 0.1), 2)


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean recall over the classes present in ``y``."""
    present = np.bincount(y, minlength=classes) > 0
    hits = np.bincount(y[predicted == y], minlength=classes)
    return float((hits[present] / np.bincount(y, minlength=classes)[present]).mean())


def fit_offsets(log_p: np.ndarray, y: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class offsets maximising balanced accuracy of ``argmax(log_p + offsets)``: coordinate ascent on GRID."""
    classes = log_p.shape[1]
    offsets = np.zeros(classes)
    best = balanced_accuracy(y, log_p.argmax(1), classes)
    for _ in range(rounds):
        for k in range(classes):
            for value in GRID:
                trial = offsets.copy()
                trial[k] = value
                score = balanced_accuracy(y, (log_p + trial).argmax(1), classes)
                if score > best:
                    best, offsets = score, trial
    return offsets


def screen_run(run: Path) -> dict:
    int8 = Classifier(run / "int8.tflite", threads=2)
    images, y, _ = validation_part(run, int8.contract)
    log_p = np.log(int8_probabilities(int8, images))
    offsets = fit_offsets(log_p, y)
    classes = len(int8.contract.labels)
    validation = [balanced_accuracy(y, (log_p + b).argmax(1), classes) for b in (0, offsets)]
    out: dict = {"run": str(run), "offsets": dict(zip(int8.contract.labels, offsets.tolist())),
                 "validation": validation, "sets": {}}  # fmt: skip
    for s in scored_sets(run, RunFolder(run).contract()):
        if s.y is None:
            continue
        test_log_p = np.log(int8_probabilities(int8, s.images))
        out["sets"][s.name] = {
            "as_is": balanced_accuracy(s.y, test_log_p.argmax(1), classes),
            "offsets": balanced_accuracy(s.y, (test_log_p + offsets).argmax(1), classes),
        }
    for key in ("as_is", "offsets"):
        out[f"mean_{key}"] = float(np.mean([v[key] for v in out["sets"].values()]))
    out["gain"] = out["mean_offsets"] - out["mean_as_is"]
    return out


if __name__ == "__main__":
    screen_runs("offsets", __doc__, screen_run)
