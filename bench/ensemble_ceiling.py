"""How far averaging several trained Keras models gets on one validation split: a ceiling study.

    python bench/ensemble_ceiling.py runs/isic9_288_e30 runs/isic9_288_pt5 runs/isic9_320_e30

The runs must share their validation split (same data and --seed). Each model sees the images at
its own input size; their calibrated probabilities (the contract's temperature) are averaged.
Prints accuracy and balanced accuracy of each run and of every combination of two or more, as JSON.
The members were each chosen by early stopping on this same split, so the figures lean optimistic.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from edge.model.contract import load_contract
from training.datasets import Sample
from training.evaluate import run_probabilities


def main() -> None:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="training run folders with the same split.json")
    args = parser.parse_args()
    split = json.loads((args.runs[0] / "split.json").read_text())
    for run in args.runs[1:]:
        if json.loads((run / "split.json").read_text())["validation"] != split["validation"]:
            raise SystemExit(f"{run} was validated on another split than {args.runs[0]}")
    samples = [Sample(Path(p), label) for p, label in zip(split["validation"], split["validation_labels"])]
    probs, y = {}, None
    for run in args.runs:
        contract = load_contract(run / "contract.json")
        probs[run.name] = run_probabilities(run, contract, samples)
        y = np.array([contract.labels.index(s.label) for s in samples])
    rows = []
    for k in range(1, len(args.runs) + 1):
        for names in itertools.combinations(probs, k):
            answer = np.mean([probs[n] for n in names], axis=0).argmax(1)
            rows.append({"runs": names, "accuracy": round(accuracy_score(y, answer), 3),
                         "balanced_accuracy": round(balanced_accuracy_score(y, answer), 3)})  # fmt: skip
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
