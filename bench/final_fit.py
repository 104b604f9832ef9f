"""The final fit on every collection against the recipe, where both are fair: the test images both held out.

    python bench/final_fit.py runs/isic8_s0/int8x4.tflite runs/all_s0/int8x4.tflite      # bench/results/final_fit.json

The first file is the recipe's (trained on isic9, HAM10000 and ISIC 2019, benign/malignant and PH2 held
out), the second the same recipe trained on every collection, benign/malignant and PH2 included (their
labels through the set-valued loss, training/labels.py). More collections make another split, so the only
images neither file trained on, validated or calibrated on are those both runs put in their test parts:
each file's run folder is the one its ``.tflite`` lies in. On those images, per collection, both files are
scored as the edge runs them and the gain in malignancy AUC is judged by the paired rule (bench/paired.py;
one pair of runs is one "seed"). Balanced accuracy is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from paired import PairedSet, judge
from recipe import collection_names, int8_probabilities
from results import save

from edge.model.classifier import Classifier
from training.evaluate import classification_metrics
from training.runfolder import RunFolder
from training.splits import load_images
from training.train import read_collections


def common_test_part(recipe: Path, final: Path):
    """(images, class indices, collection names) of the recipe run's test images the final run also held out."""
    config = RunFolder(recipe).config()
    samples, labels, origins, _ = read_collections(config)
    by_path = {str(s.path.resolve()): s for s in samples}
    both = sorted(set(RunFolder(recipe).split()["test"]) & set(RunFolder(final).split()["test"]))
    loaded = load_images([by_path[p] for p in both if p in by_path], RunFolder(recipe).contract())
    names = np.array(collection_names(config))
    y = np.array([labels.index(s.label) for s in loaded.samples])
    return loaded.images, y, names[[origins[s.path] for s in loaded.samples]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", type=Path, help="the recipe's .tflite, in its run folder")
    parser.add_argument("final", type=Path, help="the final fit's .tflite, in its run folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images, y, where = common_test_part(args.recipe.parent, args.final.parent)
    files = [Classifier(f, threads=2) for f in (args.recipe, args.final)]
    if files[0].contract.labels != files[1].contract.labels:
        raise SystemExit("the two files have other classes")
    contract = files[0].contract
    mal = list(contract.malignant_indices)
    probs = [int8_probabilities(f, images) for f in files]
    sets, rows = {}, []
    for name in dict.fromkeys(where):
        ours = where == name
        bad = np.isin(y[ours], mal)
        sets[name] = PairedSet(bad, probs[0][ours][:, mal].sum(1), probs[1][ours][:, mal].sum(1))
        scored = [classification_metrics(y[ours], p[ours], f.contract) for p, f in zip(probs, files)]
        rows.append({"set": name, "images": int(ours.sum()),
                     "recipe_auc": scored[0]["malignant_auc"], "final_auc": scored[1]["malignant_auc"],
                     "recipe_balanced_accuracy": scored[0]["balanced_accuracy"],
                     "final_balanced_accuracy": scored[1]["balanced_accuracy"]})  # fmt: skip
    verdict = judge([sets])
    print(json.dumps(rows, indent=1), verdict.line(), sep="\n")
    command = f"python bench/final_fit.py {args.recipe} {args.final}"
    save("final_fit", command, rows=rows, verdict=verdict.line())


if __name__ == "__main__":
    main()
