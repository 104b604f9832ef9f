"""The final fit on every collection against the recipe, on the test images neither trained on.

    python bench/final_fit.py --pair runs/isic8_s0/int8x4.tflite runs/all_s0/int8x4.tflite \
        --pair runs/isic8_s1/int8x4.tflite runs/all_s1/int8x4.tflite ...      # bench/results/final_fit.json

In each pair the first file is the recipe's (trained on isic9, HAM10000 and ISIC 2019; benign/malignant and
PH2 held out), the second the same recipe with the same seed trained on every collection, benign/malignant
and PH2 included (their labels through the set-valued loss, training/labels.py). Each file's run folder is
the one its ``.tflite`` lies in. More collections make another split, so the fair images are those neither
run trained, validated or calibrated on: the three shared collections' images both runs put in their test
parts, and the final run's benign/malignant and PH2 test parts less every (near-)copy of an image of the
recipe's collections (the recipe never saw the rest). Both files are scored on them as the edge runs them,
and the gain in the five-set mean malignancy AUC is judged by the paired rule (bench/paired.py; one pair of
runs is one seed). Balanced accuracy is reported beside it where a set has classes.

A lever that needs retraining on the same collections (e.g. a 224 px second stage, ``train --weights RUN
--img-size 224``) is paired the same way: where the two runs share one split, every test part is fair to
both. Each file sees the images through its own contract's preprocessing (its input size).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from paired import PairedSet, judge, mean_auc
from recipe import EXTERNAL, ScoredSet, int8_probabilities, scored_sets
from results import save

from edge.model.classifier import Classifier
from training.evaluate import classification_metrics
from training.pipeline import cache_dir
from training.runfolder import RunFolder
from training.splits import leaks_into, load_images
from training.train import read_collections


def fair_sets(recipe: Path, final: Path, contract) -> list[ScoredSet]:
    """The final run's test parts, each cut to the images the recipe run never trained on (see above)."""
    if RunFolder(recipe).split_file.read_bytes() == RunFolder(final).split_file.read_bytes():
        return scored_sets(final, contract)  # one split: every test part is fair to both
    recipe_test = set(RunFolder(recipe).split()["test"])
    config = RunFolder(recipe).config()
    trained = load_images(read_collections(config)[0], contract, cache=cache_dir())
    final_samples = {str(x.path.resolve()): x for x in read_collections(RunFolder(final).config())[0]}
    out = []
    for s in scored_sets(final, contract):
        if s.name in EXTERNAL:
            loaded = load_images([final_samples[str(p.resolve())] for p in s.paths], contract)
            keep = ~leaks_into(loaded, trained)
        else:
            keep = np.array([str(p.resolve()) in recipe_test for p in s.paths], dtype=bool)
        paths = [p for p, k in zip(s.paths, keep) if k]
        classes = None if s.y is None or s.name in EXTERNAL else s.y[keep]  # unseen: by malignancy (recipe.py)
        out.append(ScoredSet(s.name, s.images[keep], classes, s.bad[keep], paths))
        logging.info("%s: %d of the final run's %d test images are fair", s.name, keep.sum(), len(keep))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, type=Path, action="append", required=True, metavar=("RECIPE", "FINAL"),
                        help="the recipe's .tflite, then the final fit's (one pair a seed)")  # fmt: skip
    parser.add_argument("--name", default="final_fit", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    splits = {(RunFolder(r.parent).split_file.read_bytes(), RunFolder(f.parent).split_file.read_bytes())
              for r, f in args.pair}  # fmt: skip
    if len(splits) != 1:
        raise SystemExit("every pair must share the recipe's split and the final fit's split (seeds change neither)")
    first = Classifier(args.pair[0][0], threads=2).contract
    views: dict[tuple, list[ScoredSet]] = {}

    def sets_for(contract) -> list[ScoredSet]:
        """The fair sets as this file sees them (near-duplicates are found at one size whatever the contract)."""
        if contract.preprocessing not in views:
            views[contract.preprocessing] = fair_sets(args.pair[0][0].parent, args.pair[0][1].parent, contract)
        return views[contract.preprocessing]

    seeds, rows = [], []
    for recipe_file, final_file in args.pair:
        files = [Classifier(f, threads=2) for f in (recipe_file, final_file)]
        if any(f.contract.labels != first.labels for f in files):
            raise SystemExit(f"{recipe_file} and {final_file} must have the classes of the first pair")
        mal = list(first.malignant_indices)
        paired = {}
        for s, seen in zip(sets_for(files[0].contract), sets_for(files[1].contract)):
            assert s.paths == seen.paths, "both files must see the same images"
            probs = [int8_probabilities(files[0], s.images), int8_probabilities(files[1], seen.images)]
            paired[s.name] = PairedSet(s.bad, probs[0][:, mal].sum(1), probs[1][:, mal].sum(1))
            row = {"pair": [str(recipe_file), str(final_file)], "set": s.name, "images": len(s.images),
                   "malignant": int(s.bad.sum())}  # fmt: skip
            for who, p, f in zip(("recipe", "final"), probs, files):
                row[f"{who}_auc"] = mean_auc([(s.bad, p[:, mal].sum(1))])
                if s.y is not None:
                    row[f"{who}_balanced_accuracy"] = classification_metrics(s.y, p, f.contract)["balanced_accuracy"]
            rows.append(row)
        seeds.append(paired)
    verdict = judge(seeds)
    print(json.dumps(rows, indent=1), verdict.line(), sep="\n")
    command = "python bench/final_fit.py " + " ".join(f"--pair {r} {f}" for r, f in args.pair)
    command += f" --name {args.name}" if args.name != "final_fit" else ""
    save(args.name, command, rows=rows, gains=list(verdict.gains), verdict=verdict.line())


if __name__ == "__main__":
    main()
