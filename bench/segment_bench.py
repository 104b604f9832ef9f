"""Benchmarks for the lesion segmenter (issue #7). No TensorFlow: the edge runtime only.

    # latency of the segmenter against a classifier, interleaved, 1 thread
    python bench/segment_bench.py latency --segmenter models/ph2_segment_int8.tflite \
        --classifier models/isic8_int8.tflite --image ../shared/data/ph2/images/IMD002.jpg

    # the segmenter on a segmentation run's validation split, through the edge path (original files)
    python bench/segment_bench.py masks --segmenter models/ph2_segment_int8.tflite --run runs/ph2_segment

    # does classifying the segmented lesion's crop beat the centre crop? (a classifier run's validation split)
    python bench/segment_bench.py crop --segmenter models/ph2_segment_int8.tflite \\
        --classifier models/isic8_int8.tflite --run runs/isic9_b

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


def masks(segmenter: Path, run: Path) -> dict:
    """ISIC 2018 Task 1 scores of the .tflite segmenter on a run's validation images, from the files."""
    from edge.image.preprocess import preprocess_mask
    from training.segment.data import load_mask
    from training.segment.metrics import segmentation_metrics

    seg = Segmenter(segmenter, threads=1)
    split = RunFolder(run).split()
    preds, truths = [], []
    for image_path, mask_path in zip(split["validation"], split["validation_masks"]):
        preds.append(seg.mask(load_image(image_path)))
        truths.append(preprocess_mask(load_mask(mask_path), seg.contract))
    scores = segmentation_metrics(preds, truths)
    scores.pop("per_image_jaccard")
    return {"segmenter": str(segmenter), "run": str(run), **scores}


def crop(segmenter: Path, classifier: Path, run: Path, limit: int) -> dict:
    """Balanced accuracy on a classifier run's validation split, centre crop vs segmented-lesion crop."""
    from sklearn.metrics import balanced_accuracy_score

    clf = Classifier(classifier, threads=1)
    seg = Segmenter(segmenter, threads=1)
    split = RunFolder(run).split()
    paths, labels = split["validation"], split["validation_labels"]
    if limit:
        paths, labels = paths[:limit], labels[:limit]
    y = np.array([clf.contract.labels.index(label) for label in labels])
    plain, cropped, found, areas = [], [], 0, []
    for path in paths:
        image = load_image(path)
        plain.append(int(np.argmax(clf.probabilities(preprocess(image, clf.contract)))))
        lesion = seg.segment(image)
        found += lesion.found
        areas.append(lesion.area_fraction)
        cropped.append(int(np.argmax(clf.probabilities(lesion_input(image, lesion, clf.contract)))))
    plain_a, crop_a = np.array(plain), np.array(cropped)
    rng = np.random.default_rng(0)  # paired bootstrap of the balanced-accuracy difference
    diffs = []
    for _ in range(1000):
        i = rng.integers(0, len(y), len(y))
        diffs.append(balanced_accuracy_score(y[i], crop_a[i]) - balanced_accuracy_score(y[i], plain_a[i]))
    return {
        "classifier": str(classifier),
        "segmenter": str(segmenter),
        "run": str(run),
        "n": len(paths),
        "lesion_found": found,
        "median_area_fraction": round(float(np.median(areas)), 3),
        "centre_crop": {
            "balanced_accuracy": round(float(balanced_accuracy_score(y, plain_a)), 4),
            "accuracy": round(float((plain_a == y).mean()), 4),
        },
        "lesion_crop": {
            "balanced_accuracy": round(float(balanced_accuracy_score(y, crop_a)), 4),
            "accuracy": round(float((crop_a == y).mean()), 4),
        },
        "difference_95ci": [round(float(v), 4) for v in np.percentile(diffs, (2.5, 97.5))],
        "changed_predictions": int((plain_a != crop_a).sum()),
        "margin": seg.margin,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("latency", help="segmenter vs classifier invoke time, interleaved, 1 thread")
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--image", type=Path, help="feed this image (default: random pixels)")
    p = sub.add_parser("masks", help="Jaccard/Dice of the .tflite segmenter on a segmentation run's validation split")
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True)
    p = sub.add_parser("crop", help="classifier balanced accuracy: centre crop vs segmented-lesion crop")
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True, help="the classifier's run folder (split.json)")
    p.add_argument("--limit", type=int, default=0, help="first N validation images only (0 = all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.what == "latency":
        result = latency(args.segmenter, args.classifier, args.runs, args.image)
    elif args.what == "masks":
        result = masks(args.segmenter, args.run)
    else:
        result = crop(args.segmenter, args.classifier, args.run, args.limit)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    save(f"segment_{args.what}", "python bench/segment_bench.py " + " ".join(sys.argv[1:]), **result)


if __name__ == "__main__":
    main()
