"""Test-time augmentation: does averaging flipped and transposed views of an image help?

    python bench/view_averaging.py runs/isic9_288_e30 --tflite models/isic9_int8.tflite

For the run's Keras model (and a converted file of it, if given) on the run's validation split:
accuracy and balanced accuracy of each of the 8 dihedral views (flips and transposes; training
augments with flips and rotations, so each is a plausible input), of the 4 flips averaged and of
all 8 averaged (mean of logits), and the top-1 agreement of the file with the Keras model for each.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.model.contract import load_contract
from training.datasets import Sample
from training.splits import load_images

VIEWS = {
    "identity": lambda x: x,
    "flip_lr": lambda x: x[:, :, ::-1],
    "flip_ud": lambda x: x[:, ::-1],
    "rotate_180": lambda x: x[:, ::-1, ::-1],
    "transpose": lambda x: x.transpose(0, 2, 1, 3),
    "rotate_90": lambda x: x.transpose(0, 2, 1, 3)[:, :, ::-1],
    "rotate_270": lambda x: x.transpose(0, 2, 1, 3)[:, ::-1],
    "anti_transpose": lambda x: x.transpose(0, 2, 1, 3)[:, ::-1, ::-1],
}
AVERAGES = {"4 flips": list(VIEWS)[:4], "8 dihedral": list(VIEWS)}


def main() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    from training.evaluate import logits_function

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (model.keras, contract.json, split.json)")
    parser.add_argument("--tflite", type=Path, help="a converted file of this run to score the same way")
    args = parser.parse_args()
    split = json.loads((args.run / "split.json").read_text())
    contract = load_contract(args.run)
    samples = [Sample(Path(p), label) for p, label in zip(split["validation"], split["validation_labels"])]
    images = load_images(samples, contract).images
    y = np.array([contract.labels.index(s.label) for s in samples])
    views = {name: np.ascontiguousarray(view(images)) for name, view in VIEWS.items()}
    sources = {"keras": args.run, **({"tflite": args.tflite} if args.tflite else {})}
    logits = {}
    for model_name, source in sources.items():
        fn = logits_function(source)
        logits[model_name] = {name: fn(x) for name, x in views.items()}
    rows = []
    for name in [*VIEWS, *AVERAGES]:
        row: dict = {"views": name}
        answers = {}
        for model_name, by_view in logits.items():
            answer = np.mean([by_view[v] for v in AVERAGES.get(name, [name])], axis=0).argmax(1)
            row[model_name] = {"accuracy": round(accuracy_score(y, answer), 3),
                               "balanced_accuracy": round(balanced_accuracy_score(y, answer), 3)}  # fmt: skip
            answers[model_name] = answer
        if "tflite" in answers:
            row["agreement"] = round(float((answers["keras"] == answers["tflite"]).mean()), 3)
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
