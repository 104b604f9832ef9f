"""Score a converted .tflite model on its training run's validation split, as the edge runs it.

    python bench/evaluate_model.py runs/isic9_ham models/isic9_int8.tflite

Prints accuracy, balanced accuracy, macro and malignant AUC, ECE (with the contract's temperature;
with a 95 % bootstrap interval) and sensitivity / specificity at the contract's risk threshold, as
JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.classifier import Classifier
from edge.preprocess import load_image, preprocess
from training.evaluate import classification_metrics, expected_calibration_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (has split.json)")
    parser.add_argument("model", type=Path, help="converted .tflite with its contract embedded")
    args = parser.parse_args()
    split = json.loads((args.run / "split.json").read_text())
    clf = Classifier(args.model)
    c = clf.contract
    y = np.array([c.labels.index(name) for name in split["validation_labels"]])
    probs = np.stack([clf.probabilities(preprocess(load_image(p), c)) for p in split["validation"]])
    m = classification_metrics(y, probs, c)
    rng = np.random.default_rng(0)  # ECE on a few hundred images is noisy: a bootstrap interval
    draws = [rng.integers(0, len(y), len(y)) for _ in range(500)]
    boot = [expected_calibration_error(probs[i], y[i]) for i in draws]
    m["ece_bootstrap_95"] = [round(float(v), 3) for v in np.percentile(boot, [2.5, 97.5])]
    keep = ("n", "accuracy", "balanced_accuracy", "macro_auc", "malignant_auc", "ece", "risk_threshold",
            "malignant_sensitivity", "malignant_specificity", "ece_bootstrap_95")  # fmt: skip
    print(json.dumps({"model": str(args.model), **{k: m[k] for k in keep if k in m}}, indent=2))


if __name__ == "__main__":
    main()
