"""Per-class offsets before the top-1 label, judged by the paired rule on balanced accuracy.

    python bench/offsets.py runs/all_s0 runs/all_s1 runs/all_s2 --int8 int8x4.tflite   # bench/results/offsets.json

For each run (one seed of the shipped recipe, one fixed split), offsets are added to its int8 file's calibrated
log-probabilities before the top-1 label is taken; the malignancy risk and flag are untouched, so the figure
is not the malignancy AUC but the mean balanced accuracy over the labelled test parts of the three shared
collections (isic9, HAM10000, ISIC 2019; decided before the runs). The offsets are fitted on the run's
validation images (pooled) to maximise balanced accuracy (coordinate ascent on a grid); the test parts
are scored once without and with them, paired by seed (bench/paired.py, resampling within each class).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from paired import PairedSet, balanced_accuracy, mean_balanced_accuracy
from recipe import int8_probabilities, scored_sets, validation_part
from results import paired_screen

from edge.model.classifier import Classifier
from training.runfolder import RunFolder

GRID = np.round(np.arange(-2.0, 2.01, 0.1), 2)
SETS = ("isic9", "ham10000", "isic2019")


def fit_offsets(log_p: np.ndarray, y: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-class offsets maximising balanced accuracy of ``argmax(log_p + offsets)``: coordinate ascent on GRID."""
    offsets = np.zeros(log_p.shape[1])
    best = balanced_accuracy(y, log_p.argmax(1))
    for _ in range(rounds):
        for k in range(len(offsets)):
            for value in GRID:
                trial = offsets.copy()
                trial[k] = value
                score = balanced_accuracy(y, (log_p + trial).argmax(1))
                if score > best:
                    best, offsets = score, trial
    return offsets


def paired_run(run: Path, int8_name: str) -> tuple[dict, dict[str, PairedSet]]:
    int8 = Classifier(run / int8_name, threads=2)
    images, y, _ = validation_part(run, int8.contract)
    log_p = np.log(int8_probabilities(int8, images))
    offsets = fit_offsets(log_p, y)
    validation = [balanced_accuracy(y, (log_p + b).argmax(1)) for b in (0, offsets)]
    row: dict = {"run": str(run), "offsets": dict(zip(int8.contract.labels, offsets.round(2).tolist())),
                 "validation": validation, "sets": {}}  # fmt: skip
    paired = {}
    for s in scored_sets(run, RunFolder(run).contract()):
        if s.name not in SETS:
            continue
        test_log_p = np.log(int8_probabilities(int8, s.images))
        paired[s.name] = PairedSet(s.y, test_log_p.argmax(1), (test_log_p + offsets).argmax(1))
        row["sets"][s.name] = {"images": len(s.y), "as_is": balanced_accuracy(s.y, paired[s.name].base),
                               "offsets": balanced_accuracy(s.y, paired[s.name].lever)}  # fmt: skip
        logging.info(
            "%s %s: %.4f -> %.4f", run.name, s.name, row["sets"][s.name]["as_is"], row["sets"][s.name]["offsets"]
        )
    return row, paired


if __name__ == "__main__":
    paired_screen("offsets", __doc__, paired_run, figure=mean_balanced_accuracy)
