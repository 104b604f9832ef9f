"""Benchmarks for the lesion segmenter (issue #7). No TensorFlow: the edge runtime only.

    # latency of the segmenter against a classifier, interleaved, 1 thread
    python bench/segment_bench.py latency --segmenter models/lesion_segment_int8.tflite \
        --classifier models/isic8_int8.tflite --image ../shared/data/ph2/images/IMD002.jpg

    # segmenters on a segmentation run's validation split (--run) or on a folder of images with masks (--data),
    # through the edge path (original files), each collection apart
    python bench/segment_bench.py masks --segmenter models/lesion_segment_int8.tflite --run runs/lesion_segment

    # the lesion crop as a lever, by the paired rule (bench/paired.py) on a classifier's seeds' test parts
    python bench/segment_bench.py crop --segmenter models/lesion_segment_int8.tflite \\
        runs/all_s0 runs/all_s1 runs/all_s2 --int8 int8x4.tflite

Each prints one JSON object on stdout and keeps it as bench/results/segment_WHAT.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results import save  # noqa: E402

from edge.image.preprocess import load_image, preprocess  # noqa: E402
from edge.model.classifier import Classifier  # noqa: E402
from edge.model.runtime import TFLiteModel  # noqa: E402
from edge.model.segment import Segmenter, lesion_input  # noqa: E402
from training.runfolder import RunFolder

log = logging.getLogger("segment_bench")


def latency(segmenter: Path, classifier: Path, runs: int, image: Path | None) -> dict:
    """Median and p90 invoke times of both models, interleaved so machine noise hits both alike."""
    models = {"segmenter": TFLiteModel(segmenter, threads=1), "classifier": TFLiteModel(classifier, threads=1)}
    rng = np.random.default_rng(0)
    inputs = {}
    for name, model in models.items():
        size = model.input_shape[1]
        if image is not None:
            from edge.model.contract import ModelContract

            inputs[name] = preprocess(load_image(image), ModelContract(task="segment", labels=(), image_size=size))
        else:
            inputs[name] = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        for _ in range(5):
            model(inputs[name])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, model in models.items():
            start = time.perf_counter()
            model(inputs[name])
            times[name].append((time.perf_counter() - start) * 1000)
    out = {
        name: {
            "path": str(models[name].path),
            "size_bytes": models[name].path.stat().st_size,
            "p50_ms": round(float(np.median(t)), 3),
            "p90_ms": round(float(np.percentile(t, 90)), 3),
        }
        for name, t in times.items()
    }
    out["ratio_p50"] = round(out["segmenter"]["p50_ms"] / out["classifier"]["p50_ms"], 3)
    out["runs"], out["threads"] = runs, 1
    return out


def masks(segmenters: list[Path], run: Path | None, data: list[Path], test_of: Path | None) -> dict:
    """ISIC 2018 Task 1 scores of each .tflite segmenter, from the files: on a segmentation run's validation
    images, or on every image with a mask in the ``data`` folders (only those in the test part of the
    classifier run ``test_of``, when given: the images `train --task segment --hold-out` left out)."""
    from edge.image.preprocess import preprocess_mask
    from training.segment.data import find_mask_pairs, load_mask
    from training.segment.metrics import segmentation_metrics

    if run is not None:  # (image, mask, collection)
        split = RunFolder(run).split()
        pairs = [(i, m, run.name) for i, m in zip(split["validation"], split["validation_masks"])]
    else:
        pairs = [(p.image, p.mask, Path(folder).name) for folder in data for p in find_mask_pairs(folder)]
    if test_of is not None:
        test_ids = RunFolder(test_of).test_ids()
        pairs = [pair for pair in pairs if Path(pair[0]).stem in test_ids]
    out: dict = {"images": len(pairs), "segmenters": {}}
    for segmenter in segmenters:
        seg = Segmenter(segmenter, threads=1)
        preds, truths, where = [], [], []
        for image_path, mask_path, collection in pairs:
            preds.append(seg.mask(load_image(image_path)))
            truths.append(preprocess_mask(load_mask(mask_path), seg.contract))
            where.append(collection)
        out["segmenters"][str(segmenter)] = by_collection = {}
        for collection in dict.fromkeys(where):  # each collection's figures apart: a claim must hold on each
            keep = [i for i, c in enumerate(where) if c == collection]
            scores = segmentation_metrics([preds[i] for i in keep], [truths[i] for i in keep])
            scores.pop("per_image_jaccard")
            by_collection[collection] = scores
    return out


def crop(segmenter: Path, runs: list[Path], int8_name: str) -> dict:
    """The lesion crop as a lever, judged by the paired rule: each run's int8 file on its test parts (every
    collection's), the malignancy risk from the centre crop against the risk from the segmented lesion's crop."""
    from paired import PairedSet, judge
    from recipe import scored_sets

    seg = Segmenter(segmenter, threads=1)
    lesions: dict[str, object] = {}  # one split for every seed: each image is segmented once
    seeds, rows = [], []
    for run in runs:
        clf = Classifier(run / int8_name, threads=1)
        mal = list(clf.contract.malignant_indices)
        paired = {}
        for s in scored_sets(run, RunFolder(run).contract()):
            base, lever = [], []
            for path in s.paths:
                image = load_image(path)
                if str(path) not in lesions:
                    lesions[str(path)] = seg.segment(image)
                lesion = lesions[str(path)]
                base.append(clf.probabilities(preprocess(image, clf.contract))[mal].sum())
                lever.append(clf.probabilities(lesion_input(image, lesion, clf.contract))[mal].sum())
            paired[s.name] = PairedSet(s.bad, np.array(base), np.array(lever))
            log.warning("%s %s: %d images", run, s.name, len(base))
        seeds.append(paired)
        rows.append(
            {"run": str(run), **{name: [_auc(p.bad, p.base), _auc(p.bad, p.lever)] for name, p in paired.items()}}
        )
    verdict = judge(seeds)
    found = [lesion.found for lesion in lesions.values()]
    return {"segmenter": str(segmenter), "runs": rows, "images_segmented": len(found),
            "lesion_found": float(np.mean(found)), "gains": list(verdict.gains), "verdict": verdict.line()}  # fmt: skip


def _auc(bad: np.ndarray, risk: np.ndarray) -> float:
    from paired import mean_auc

    return mean_auc([(bad, risk)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("latency", help="segmenter vs classifier invoke time, interleaved, 1 thread")
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--image", type=Path, help="feed this image (default: random pixels)")
    p = sub.add_parser("masks", help="Jaccard/Dice of .tflite segmenters on a run's validation split or a folder")
    p.add_argument("--segmenter", type=Path, required=True, action="append", help="repeatable: scored side by side")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", type=Path, help="a segmentation run: its validation split")
    where.add_argument("--data", type=Path, action="append", help="folders of images with masks (repeatable)")
    p.add_argument("--test-of", type=Path, help="with --data: only the images in this classifier run's test part")
    p = sub.add_parser("crop", help="the lesion crop judged by the paired rule: centre crop vs segmented-lesion crop")
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("runs", nargs="+", type=Path, help="classifier runs of one split (seeds), each with --int8")
    p.add_argument("--int8", default="int8.tflite", help="each run's int8 file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.what == "latency":
        result = latency(args.segmenter, args.classifier, args.runs, args.image)
    elif args.what == "masks":
        result = masks(args.segmenter, args.run, args.data or [], args.test_of)
    else:
        result = crop(args.segmenter, args.runs, args.int8)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    save(f"segment_{args.what}", "python bench/segment_bench.py " + " ".join(sys.argv[1:]), **result)


if __name__ == "__main__":
    main()
