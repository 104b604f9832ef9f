"""Score a converted .tflite model on its training run's validation split, as the edge runs it.

    python bench/evaluate_model.py runs/isic9_ham models/isic9_int8.tflite

Prints accuracy, balanced accuracy, macro and malignant AUC, ECE (with the contract's temperature;
with a 95 % bootstrap interval and the ECE a perfectly calibrated model with the same confidences
would show on as many images: the estimator's noise floor) and sensitivity / specificity at the
contract's risk threshold, as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.image.preprocess import load_image, preprocess
from edge.model.calibration import expected_calibration_error
from edge.model.classifier import Classifier
from training.evaluate import classification_metrics


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
    # the ECE a perfectly calibrated model with these confidences would show on this many images
    top, conf = probs.argmax(1), probs.max(1)
    perfect = [np.where(rng.random(len(y)) < conf, top, (top + 1) % probs.shape[1]) for _ in range(500)]
    floor = [expected_calibration_error(probs, labels) for labels in perfect]
    m["ece_if_perfectly_calibrated"] = {"mean": round(float(np.mean(floor)), 3),
                                        "95th_percentile": round(float(np.percentile(floor, 95)), 3)}  # fmt: skip
    keep = ("n", "accuracy", "balanced_accuracy", "macro_auc", "malignant_auc", "ece", "risk_threshold",
            "malignant_sensitivity", "malignant_specificity", "ece_bootstrap_95",
            "ece_if_perfectly_calibrated")  # fmt: skip
    print(json.dumps({"model": str(args.model), **{k: m[k] for k in keep if k in m}}, indent=2))


if __name__ == "__main__":
    main()
