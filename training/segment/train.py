"""Train the lesion segmenter (``train DATA --task segment``) and write its run folder.

The run folder holds model.keras, contract.json (task "segment", labels background/lesion),
split.json, metrics.json (ISIC 2018 Task 1 scores on validation), overlays/ and model_card.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.datasets import DatasetError
from edge.model.contract import ModelContract
from edge.model.segment import mask_from_logits
from training.best_epoch import BestEpoch
from training.config import SegmentConfig
from training.runfolder import RunFolder
from training.segment.data import SegmentationData, find_mask_pairs, load_segmentation_data, split_pairs
from training.segment.metrics import segmentation_metrics

__all__ = ["SEGMENT_LABELS", "predict_masks", "train_segmenter"]

log = logging.getLogger(__name__)

SEGMENT_LABELS = ("background", "lesion")


def _augmenter(seed: int):
    import keras

    joint = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
            keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom((-0.2, 0.15), fill_mode="reflect", seed=seed),
        ],
        name="augment_joint",
    )
    colour = keras.Sequential(
        [
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
            keras.layers.RandomContrast(0.15, seed=seed),
        ],
        name="augment_colour",
    )
    return joint, colour


def _dataset(images: np.ndarray, masks: np.ndarray, batch: int, seed: int, out_size: int):
    """Batches of (image float 0..255, soft target mask at the model's output size), augmented."""
    import tensorflow as tf

    joint, colour = _augmenter(seed)
    size = images.shape[1]

    def augment(x, m):
        x = tf.cast(x, tf.float32)
        m = tf.cast(m[..., None], tf.float32) * 255.0
        both = joint(tf.concat([x, m], axis=-1), training=True)  # one geometry for image and mask
        x = tf.clip_by_value(colour(both[..., :3], training=True), 0.0, 255.0)
        m = both[..., 3:] / 255.0
        if out_size != size:
            m = tf.nn.avg_pool2d(m, size // out_size, size // out_size, "VALID")
        return x, m

    ds = tf.data.Dataset.from_tensor_slices((images, masks)).shuffle(len(images), seed=seed)
    return ds.batch(batch).map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def predict_masks(model, images: np.ndarray, batch: int = 16) -> np.ndarray:
    """0/1 masks (N, S, S) at the input size from a Keras segmenter."""
    size = images.shape[1]
    out = []
    for i in range(0, len(images), batch):
        logits = np.asarray(model(images[i : i + batch].astype("float32"), training=False))
        out += [mask_from_logits(lg, size) for lg in logits]
    return np.stack(out) if out else np.zeros((0, size, size), np.uint8)


def train_segmenter(config: SegmentConfig) -> Path:
    """Train, evaluate and write a segmentation run folder; returns its path.

    Raises:
        DatasetError: no usable image/mask pairs.
        ValueError: an unsupported architecture or image size.
    """
    import keras

    from training.model import reparametrize_batchnorm, resolve_weights
    from training.segment.model import bce_dice_loss, build_segmenter
    from training.segment.report import save_overlays, write_segment_card

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    pairs = find_mask_pairs(config.data)
    if config.max_images and len(pairs) > config.max_images:
        rng = np.random.default_rng(config.seed)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), config.max_images, replace=False))]
    contract = ModelContract(
        task="segment", labels=SEGMENT_LABELS, arch=f"mobilenet_v3_{config.arch}_unet", image_size=config.image_size
    )
    model, backbone = build_segmenter(config.image_size, config.arch, resolve_weights(config.weights, config.arch))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    log.info("reading %d image/mask pairs from %s", len(pairs), config.data)
    data = load_segmentation_data(pairs, contract)
    if len(data.pairs) < 4:
        raise DatasetError(f"only {len(data.pairs)} readable image/mask pairs in {config.data}; need at least 4")
    train_idx, val_idx = split_pairs(data, config.val_fraction, config.seed)
    tr, va = data.subset(train_idx), data.subset(val_idx)

    if config.weights != "none":
        sample = tr.images[np.random.default_rng(0).permutation(len(tr.images))[:256]]
        log.info("re-parametrised %d batch-norm layers for fine-tuning", reparametrize_batchnorm(backbone, sample))
    out_size = int(model.output_shape[1])
    train_ds = _dataset(tr.images, tr.masks, config.batch_size, config.seed, out_size)
    history: dict[str, list[float]] = {}
    best = BestEpoch(
        lambda m: segmentation_metrics(predict_masks(m, va.images), va.masks)["mean_jaccard"],
        history, config.patience, name="mean Jaccard", key="val_mean_jaccard",
    )  # fmt: skip

    def fit(epochs: int, lr: Any) -> None:
        model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4), loss=bce_dice_loss)
        h = model.fit(train_ds, epochs=epochs, callbacks=[best.callback()], verbose=2)
        for key, values in h.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)

    if config.head_epochs and config.weights != "none":
        backbone.trainable = False
        log.info("phase 1: training the decoder for %d epochs", config.head_epochs)
        fit(config.head_epochs, config.learning_rate)
    backbone.trainable = True
    if config.epochs:
        log.info("phase 2: fine-tuning everything for up to %d epochs", config.epochs)
        steps = config.epochs * int(np.ceil(len(tr.images) / config.batch_size))
        best.reset_patience(config.epochs)  # as the classifier: not while the rate is high
        fit(config.epochs, keras.optimizers.schedules.CosineDecay(config.learning_rate, steps))
    best.restore(model)

    preds = predict_masks(model, va.images)
    val_metrics = segmentation_metrics(preds, va.masks)
    contract = contract.replace(
        data_fingerprint=_fingerprint(data),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metrics={k: round(val_metrics[k], 4) for k in ("mean_jaccard", "thresholded_jaccard", "mean_dice")},
    )
    split = {"train": [str(p.image) for p in tr.pairs], "validation": [str(p.image) for p in va.pairs]}
    split["validation_masks"] = [str(p.mask) for p in va.pairs]
    RunFolder(out).write_model(model, contract, split)
    names = [str(p.image) for p in va.pairs]
    save_overlays(out, va.images, va.masks, preds, names, val_metrics["per_image_jaccard"])
    metrics = {
        "validation": val_metrics | {"images": names},
        "n_train": len(tr.pairs),
        "n_val": len(va.pairs),
        "n_skipped": len(data.skipped),
        "skipped": data.skipped,
        "best_epoch": best.best_epoch,
        "history": history,
        "train_seconds": time.time() - started,
        "config": dataclasses.asdict(config),
    }
    write_segment_card(out, contract, metrics, dataclasses.asdict(config))
    log.info(
        "validation: mean Jaccard %.3f, thresholded Jaccard %.3f, Dice %.3f; wrote %s",
        val_metrics["mean_jaccard"], val_metrics["thresholded_jaccard"], val_metrics["mean_dice"], out,
    )  # fmt: skip
    return out


def _fingerprint(data: SegmentationData) -> str:
    import hashlib

    digest = hashlib.sha256()
    for md5 in sorted(data.md5):
        digest.update(f"{md5}\n".encode())
    return f"sha256:{digest.hexdigest()[:16]} ({len(data.md5)} image/mask pairs)"
