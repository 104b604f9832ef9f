"""How much does a different lamp or camera white balance cost a model? A robustness check.

    python bench/color_cast.py runs/isic9_288_e30 runs/isic9_288_sog models/isic9_int8.tflite

Each model (a run folder's Keras model, or a converted .tflite as the edge runs it) classifies the
validation images of the first run folder as they are and under simulated colour casts (each RGB
channel of the decoded image scaled, then clipped, before the model's own preprocessing, colour
constancy included when its contract has it). All runs must share that split. Prints, per cast,
accuracy, balanced accuracy and the malignant sensitivity / specificity of the risk flag at the
model's own threshold (the kiosk's "see a clinician"), as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.image.preprocess import load_image, preprocess
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import load_contract

CASTS = {
    "none": (1.0, 1.0, 1.0),
    "warm lamp": (1.15, 1.0, 0.8),
    "cool daylight": (0.85, 1.0, 1.15),
    "green tint": (0.92, 1.08, 0.92),
    "dim": (0.7, 0.7, 0.7),
}

REPORTED = ("accuracy", "balanced_accuracy", "malignant_sensitivity", "malignant_specificity")


def main() -> None:
    from training.evaluate import classification_metrics, logits_function

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="run folders or .tflite files; the first is a run")
    args = parser.parse_args()
    split = json.loads((args.models[0] / "split.json").read_text())
    raw = [load_image(p) for p in split["validation"]]
    rows = []
    for source in args.models:
        contract = load_contract(source)
        logits = logits_function(source)
        y = np.array([contract.labels.index(name) for name in split["validation_labels"]])
        row = {"model": str(source), "color_constancy": contract.color_constancy}
        for cast, gain in CASTS.items():
            images = np.stack(
                [preprocess(np.clip(im * np.float32(gain) + 0.5, 0, 255).astype(np.uint8), contract) for im in raw]
            )
            probs = calibrated_probabilities(logits(images), contract.temperature)
            metrics = classification_metrics(y, probs, contract)  # the flag at the contract's own threshold
            row[cast] = {key: round(metrics[key], 3) for key in REPORTED if metrics.get(key) is not None}
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
