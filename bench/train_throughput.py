"""Is the training input pipeline the bottleneck? Images per second of the pipeline alone vs a training step alone.

    python bench/train_throughput.py                      # Small and Large-minimalistic at 96, 128, 224 px
    python bench/train_throughput.py --archs small --sizes 224 --images 128

Pipeline alone: ``training.pipeline.image_dataset`` over the on-disk cache of isic9 images (read rows,
augment, batch, prefetch), iterated without a model. Training step alone: ``model.fit`` on one fixed
batch already in memory (forward, backward, AdamW update), Keras' compiled step. Both after a warm-up,
in one process, so their ratio carries over even where the machine is noisy. Prints a Markdown table
and writes bench/results/train_throughput.json. Not a test: about five minutes on two cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from training.distribute import import_tensorflow_quietly  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic9" / "train"


def _pipeline_rate(images, targets, batch: int, steps: int, augment) -> float:
    from training.pipeline import image_dataset

    it = iter(image_dataset(images, targets, batch, seed=0, augment=augment, balanced=True))
    for _ in range(3):  # warm-up: tracing, the first prefetch
        next(it)
    started = time.perf_counter()
    for _ in range(steps):
        next(it)
    rate = steps * batch / (time.perf_counter() - started)
    del it  # its prefetch threads must not compete with the training step measured next
    gc.collect()
    return rate


def _step_rate(arch: str, size: int, classes: int, batch: int, steps: int) -> float:
    import keras
    import tensorflow as tf

    from training.model import build_classifier, resolve_weights

    model, _ = build_classifier(classes, size, arch, resolve_weights("imagenet", arch))
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    t = np.eye(classes, dtype="float32")[np.arange(batch) % classes]
    ds = tf.data.Dataset.from_tensors((x, t)).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # warm-up: tracing
    started = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--archs", nargs="+", default=["small", "large-minimalistic"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 128, 224])
    parser.add_argument("--images", type=int, default=256, help="images in the cache the pipeline reads")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=15, help="timed training steps (the pipeline gets 4x)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "train_throughput.json"
    )
    args = parser.parse_args()
    import_tensorflow_quietly()

    from edge.datasets import load_dataset
    from edge.model.contract import ModelContract
    from training.splits import load_images
    from training.train import augmenter

    dataset = load_dataset(args.data)
    samples = list(dataset.samples)[: args.images]
    augment = augmenter(seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for size in args.sizes:
            contract = ModelContract(task="classify", labels=dataset.labels, image_size=size)
            images = load_images(samples, contract, cache=Path(cache)).images
            targets = np.eye(len(dataset.labels), dtype="float32")[[dataset.labels.index(s.label) for s in samples]]
            pipeline = _pipeline_rate(images, targets, args.batch, 4 * args.steps, augment)
            for arch in args.archs:
                step = _step_rate(arch, size, len(dataset.labels), args.batch, args.steps)
                rows.append({"arch": arch, "size": size, "pipeline_images_per_s": round(pipeline, 1),
                             "train_step_images_per_s": round(step, 1),
                             "ratio": round(pipeline / step, 1)})  # fmt: skip
                print(f"{arch} {size}px: pipeline {pipeline:.0f}/s, training step {step:.1f}/s", file=sys.stderr)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "date": dt.date.today().isoformat(),
        "batch": args.batch,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| backbone | input | pipeline alone (images/s) | training step alone (images/s) | pipeline / step |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['size']} px | {r['pipeline_images_per_s']:.0f} | {r['train_step_images_per_s']:.1f} "
              f"| {r['ratio']:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
