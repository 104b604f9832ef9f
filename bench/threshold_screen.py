"""Screen one idea without training: set the malignancy threshold on the sharp validation images only.

    python bench/threshold_screen.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2 runs/isic8_s3 runs/isic8_s4

The flag's threshold is set for 90 % sensitivity on validation, most of which is ISIC 2019's 84 px
thumbnails; a kiosk's camera gives sharp images. For each run's int8 file, the threshold for 90 %
sensitivity is computed the same way twice, on every validation image and on the sharp collections'
validation images only (isic9 and HAM10000), and the flag's sensitivity and specificity at each are
scored on every set of bench/recipe.py. The AUC does not move: only where the flag sits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recipe import EXTERNAL, int8_probabilities, scored_sets, validation_part
from results import screen_runs

from edge.model.calibration import risk_threshold_for_sensitivity
from edge.model.classifier import Classifier
from training.runfolder import RunFolder

SHARP = ("isic9", "ham10000")  # collections whose images are not 84 px thumbnails
SENSITIVITY = 0.9


def validation_risk(run: Path, int8: Classifier) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(risk, malignant, sharp) for every validation image of ``run``."""
    images, y, collection = validation_part(run, int8.contract)
    malignant = list(int8.contract.malignant_indices)
    risk = int8_probabilities(int8, images)[:, malignant].sum(1)
    return risk, np.isin(y, malignant), np.isin(collection, SHARP)


def screen_run(run: Path) -> dict:
    int8 = Classifier(run / "int8.tflite", threads=2)
    risk, bad, sharp = validation_risk(run, int8)
    thresholds = {
        "all": risk_threshold_for_sensitivity(risk, bad, SENSITIVITY),
        "sharp": risk_threshold_for_sensitivity(risk[sharp], bad[sharp], SENSITIVITY),
    }
    out: dict = {"run": str(run), "shipped_threshold": int8.contract.risk_threshold, "thresholds": thresholds,
                 "validation_sharp_share": float(sharp.mean()), "sets": {}}  # fmt: skip
    for s in scored_sets(run, RunFolder(run).contract()):
        r = int8_probabilities(int8, s.images)[:, list(int8.contract.malignant_indices)].sum(1)
        out["sets"][s.name] = {
            name: {"sensitivity": float((r[s.bad] >= t).mean()), "specificity": float((r[~s.bad] < t).mean())}
            for name, t in thresholds.items()
        } | {"malignant": int(s.bad.sum()), "benign": int((~s.bad).sum())}
    sharp_sets = [n for n in out["sets"] if n in SHARP or n in EXTERNAL]
    for name in thresholds:
        for figure in ("sensitivity", "specificity"):
            out[f"sharp_sets_{figure}_{name}"] = float(np.mean([out["sets"][n][name][figure] for n in sharp_sets]))
    out["closer_to_target"] = abs(out["sharp_sets_sensitivity_sharp"] - SENSITIVITY) < abs(
        out["sharp_sets_sensitivity_all"] - SENSITIVITY
    )
    return out


if __name__ == "__main__":
    screen_runs("threshold", __doc__, screen_run)
