"""Screen one idea without training: average the calibrated int8 probabilities of several seeds.

    python bench/ensemble_screen.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2   # bench/results/ensemble.json

The runs share one split (the recipe's seeds), so every set of bench/recipe.py is the same for each.
Every pair and the whole group are scored against the mean of their members on the rule's two figures
(mean malignancy AUC over the five sets, mean balanced accuracy over the test parts), the malignancy
threshold being the first member's. An ensemble of n costs n times the inference.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import numpy as np
from recipe import int8_probabilities, scored_sets, scores
from report import headline
from results import save

from edge.model.classifier import Classifier
from training.runfolder import RunFolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sets = scored_sets(args.runs[0], RunFolder(args.runs[0]).contract())
    models = [Classifier(run / "int8.tflite", threads=2) for run in args.runs]
    probs = [[int8_probabilities(m, s.images) for s in sets] for m in models]

    def figures(members: tuple[int, ...]) -> tuple[float, float]:
        mean = [np.mean([probs[i][k] for i in members], axis=0) for k in range(len(sets))]
        contract = models[members[0]].contract
        return headline({"int8": {s.name: scores(s, p, contract) for s, p in zip(sets, mean)}})

    single = [figures((i,)) for i in range(len(models))]
    rows = []
    for size in range(2, len(models) + 1):
        for members in itertools.combinations(range(len(models)), size):
            auc, bal = figures(members)
            members_auc = float(np.mean([single[i][0] for i in members]))
            members_bal = float(np.mean([single[i][1] for i in members]))
            rows.append({
                "members": " + ".join(args.runs[i].name for i in members),
                "mean_auc": auc, "members_mean_auc": members_auc, "auc_gain": auc - members_auc,
                "mean_balanced_accuracy": bal, "members_mean_balanced_accuracy": members_bal,
            })  # fmt: skip
    print(json.dumps(rows, indent=1))
    command = "python bench/ensemble_screen.py " + " ".join(str(r) for r in args.runs)
    save("ensemble", command, rows=rows)


if __name__ == "__main__":
    main()
