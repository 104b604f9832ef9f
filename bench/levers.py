"""Levers that need no retraining, judged by the paired rule (bench/paired.py) on the recipe's seeds.

    python bench/levers.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2     # bench/results/levers.json

Each run is one seed of the README recipe (one fixed split), scored through its int8 file on the five sets
of bench/recipe.py (three test parts, benign/malignant and PH2, never trained on). For every seed, the same
images are scored without and with the lever:

- **flips**: the int8 file's logits averaged over the image and its three mirror images (what
  ``convert --views 4`` builds into one file, where the features are averaged before the dense layer:
  the same up to int8 rounding);
- **two seeds**: the seed's probabilities averaged with the next seed's (an ensemble of two models,
  twice the inference), against the seed alone;
- **the stack**: both, against the seed alone;
- **a second seed, given the flips**: the stack against the seed's flipped answers (what ``convert --ensemble``
  adds to a ``--views 4`` file).

The figure is the mean malignancy AUC over the five sets; the rule keeps a lever when its paired gain is
positive on all of up to four seeds (all but one from five) and the 95 % bootstrap interval of the mean
gain excludes zero. Balanced accuracy over the three test parts is reported beside it, not judged.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from paired import PairedSet, judge
from recipe import int8_probabilities, scored_sets
from results import save

from edge.model.classifier import Classifier
from training.evaluate import classification_metrics
from training.runfolder import RunFolder


def _balanced(sets, probs, contract) -> float:
    return float(np.mean([classification_metrics(s.y, p, contract)["balanced_accuracy"]
                          for s, p in zip(sets, probs) if s.y is not None]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sets = scored_sets(args.runs[0], RunFolder(args.runs[0]).contract())  # one split: the same sets for every seed
    models = [Classifier(run / "int8.tflite", threads=2) for run in args.runs]
    contract = models[0].contract
    mal = list(contract.malignant_indices)
    plain = [[int8_probabilities(m, s.images) for s in sets] for m in models]
    flips = [[int8_probabilities(m, s.images, 4) for s in sets] for m in models]
    pairs = [[(plain[i][k] + plain[(i + 1) % len(models)][k]) / 2 for k in range(len(sets))]
             for i in range(len(models))]  # fmt: skip
    stack = [[(flips[i][k] + flips[(i + 1) % len(models)][k]) / 2 for k in range(len(sets))]
             for i in range(len(models))]  # fmt: skip

    def paired(lever: list[list[np.ndarray]], base: list[list[np.ndarray]]) -> list[dict[str, PairedSet]]:
        return [{s.name: PairedSet(s.bad, base[i][k][:, mal].sum(1), lever[i][k][:, mal].sum(1))
                 for k, s in enumerate(sets)} for i in range(len(models))]  # fmt: skip

    rows, verdicts = [], {}
    levers = (("test-time flips (4 views)", flips, plain, "4x the backbone, one file"),
              ("two seeds averaged", pairs, plain, "2 models, 2x"),
              ("stack: two seeds x 4 flips", stack, plain, "2 models, 8x"),
              ("a second seed, given the flips", stack, flips, "2x the flipped file"))  # fmt: skip
    for name, lever, base, cost in levers:
        if lever is not flips and len(models) < 2:
            continue
        verdict = judge(paired(lever, base))
        bal_gain = [_balanced(sets, lever[i], contract) - _balanced(sets, base[i], contract)
                    for i in range(len(models))]  # fmt: skip
        verdicts[name] = {"gains": verdict.gains, "interval": verdict.interval, "keep": verdict.keep,
                          "balanced_accuracy_gains": bal_gain}  # fmt: skip
        rows.append({"lever": name, "cost": cost, "verdict": verdict.line(),
                     "balanced_accuracy_gain": f"{np.mean(bal_gain):+.4f} (per seed: "
                                               + ", ".join(f"{g:+.3f}" for g in bal_gain) + ")"})  # fmt: skip
    print(json.dumps(verdicts, indent=1))
    command = "python bench/levers.py " + " ".join(str(r) for r in args.runs)
    save("levers", command, rows=rows, verdicts=verdicts, seeds=[m.contract.metrics.get("seed") for m in models])


if __name__ == "__main__":
    main()
