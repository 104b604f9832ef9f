"""Does the class-weighted loss trade accuracy for balanced accuracy? Shift the answers back and see.

    python bench/prior_shift.py runs/isic9_224_half

Multiplies a run's calibrated validation probabilities by the training side's class frequencies
raised to tau (0: the model as trained; 1: as if trained without class weights, the usual
logit adjustment) and prints accuracy and balanced accuracy for each tau, as JSON. Folder-per-class
runs only (the training side's labels are read from the folder names). Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from edge.model.contract import load_contract
from training.datasets import Sample
from training.evaluate import run_probabilities

TAUS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (model.keras, contract.json, split.json)")
    args = parser.parse_args()
    split = json.loads((args.run / "split.json").read_text())
    contract = load_contract(args.run / "contract.json")
    labels = contract.labels
    y = np.array([labels.index(name) for name in split["validation_labels"]])
    prior = np.bincount([labels.index(Path(p).parent.name) for p in split["train"]], minlength=len(labels))
    prior = prior / prior.sum()
    samples = [Sample(Path(p), name) for p, name in zip(split["validation"], split["validation_labels"])]
    probs = run_probabilities(args.run, contract, samples)
    rows = []
    for tau in TAUS:
        pred = (probs * prior**tau).argmax(1)
        rows.append(
            {
                "tau": tau,
                "accuracy": round(accuracy_score(y, pred), 3),
                "balanced_accuracy": round(balanced_accuracy_score(y, pred), 3),
            }
        )
    print(json.dumps({"run": str(args.run), "n": len(y), "shifts": rows}, indent=1))


if __name__ == "__main__":
    main()
