"""Train the lesion segmenter (``train DATA --task segment``) and write its run folder.

The run folder holds model.keras, contract.json (task "segment", labels background/lesion),
split.json, metrics.json (ISIC 2018 Task 1 scores on validation), overlays/ and model_card.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.datasets import DatasetError
from edge.model.contract import ModelContract
from edge.model.segment import mask_from_logits
from training.config import SegmentConfig
from training.distribute import place
from training.fitloop import Fit, fit_phases, phases
from training.runfolder import RunFolder
from training.runstate import RunState, drop_checkpoint
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


def train_segmenter(config: SegmentConfig, state: RunState | None = None) -> Path:
    """Train, evaluate and write a segmentation run folder through the shared fit loop (a checkpoint an
    epoch, ``state`` from ``resume`` continues one, any tf.distribute strategy); returns its path.

    Raises:
        DatasetError: no usable image/mask pairs, or the data changed since ``state``.
        StrategyError: the requested tf.distribute strategy is not available here.
        TrainingInterrupted: SIGTERM or SIGINT; resume with ``train --resume OUT``.
        ValueError: an unsupported architecture or image size.
    """
    import keras

    from training.model import reparametrize_batchnorm, resolve_weights
    from training.segment.model import bce_dice_loss, build_segmenter
    from training.segment.report import save_overlays, write_segment_card

    started = time.time()
    placement = place(config.strategy)
    weights = resolve_weights(config.weights, config.arch)  # fails now, not after reading the data
    keras.utils.set_random_seed(config.seed)
    pairs = [pair for folder in (config.data, *config.more_data) for pair in find_mask_pairs(folder)]
    if config.hold_out:
        test_ids = RunFolder(config.hold_out).test_ids()
        if not test_ids:
            raise DatasetError(
                f"--hold-out {config.hold_out}: not a run folder with a test part (train --test-fraction)"
            )
        kept = [pair for pair in pairs if pair.image.stem not in test_ids]
        log.info("left out %d images of %s's test part", len(pairs) - len(kept), config.hold_out)
        pairs = kept
    if config.max_images and len(pairs) > config.max_images:
        rng = np.random.default_rng(config.seed)
        pairs = [pairs[i] for i in sorted(rng.choice(len(pairs), config.max_images, replace=False))]
    contract = ModelContract(
        task="segment", labels=SEGMENT_LABELS, arch=f"mobilenet_v3_{config.arch}_unet", image_size=config.image_size
    )
    out = Path(config.out)
    log.info("reading %d image/mask pairs from %s", len(pairs), " + ".join((config.data, *config.more_data)))
    data = load_segmentation_data(pairs, contract)
    if len(data.pairs) < 4:
        raise DatasetError(f"only {len(data.pairs)} readable image/mask pairs in {config.data}; need at least 4")
    train_idx, val_idx = split_pairs(data, config.val_fraction, config.seed)
    tr, va = data.subset(train_idx), data.subset(val_idx)
    split = {"train": [str(p.image) for p in tr.pairs], "validation": [str(p.image) for p in va.pairs],
             "validation_masks": [str(p.mask) for p in va.pairs]}  # fmt: skip
    digest = hashlib.sha256(json.dumps(split).encode()).hexdigest()[:16]
    if state is not None and state.split_digest != digest:
        raise DatasetError(f"the data of {out} changed since the run started (another split): start a new run")
    state = state or RunState(config=dataclasses.asdict(config), split_digest=digest)
    resuming = state.epoch > 0 or bool(state.phases_done)

    with placement.strategy.scope():
        model, backbone = build_segmenter(config.image_size, config.arch, weights)
        for layer in backbone.layers:  # batch statistics over the global batch
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = placement.replicas > 1
        if config.weights != "none" and not resuming:
            sample = tr.images[np.random.default_rng(0).permutation(len(tr.images))[:256]]
            log.info("re-parametrised %d batch-norm layers for fine-tuning", reparametrize_batchnorm(backbone, sample))
    out_size = int(model.output_shape[1])
    global_batch = config.batch_size * placement.replicas
    job = Fit(
        model, backbone, bce_dice_loss,
        batches=lambda seed: _dataset(tr.images, tr.masks, global_batch, seed, out_size), images=len(tr.images),
        validate=lambda: {"val_mean_jaccard": segmentation_metrics(predict_masks(model, va.images),
                                                                   va.masks)["mean_jaccard"]},
        scores=("val_mean_jaccard",), select="val_mean_jaccard", select_name="mean Jaccard",
    )  # fmt: skip
    # the decoder on a frozen encoder, then everything under a cosine rate: the classifier's schedule
    schedule = phases(config.head_epochs, config.learning_rate, config.epochs, config.learning_rate,
                      config.weights != "none")  # fmt: skip
    best = fit_phases(job, schedule, out, split, state, placement, config.patience, config.batch_size, config.seed)
    if not placement.is_chief:
        return out

    preds = predict_masks(model, va.images)
    val_metrics = segmentation_metrics(preds, va.masks)
    contract = contract.replace(
        data_fingerprint=_fingerprint(data),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metrics={k: round(val_metrics[k], 4) for k in ("mean_jaccard", "thresholded_jaccard", "mean_dice")},
    )
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
        "epochs": state.epoch,
        "history": state.history,
        "train_seconds": time.time() - started,
        "config": dataclasses.asdict(config),
    }
    write_segment_card(out, contract, metrics, dataclasses.asdict(config))
    drop_checkpoint(out)
    log.info(
        "validation: mean Jaccard %.3f, thresholded Jaccard %.3f, Dice %.3f; wrote %s",
        val_metrics["mean_jaccard"], val_metrics["thresholded_jaccard"], val_metrics["mean_dice"], out,
    )  # fmt: skip
    return out


def _fingerprint(data: SegmentationData) -> str:
    digest = hashlib.sha256()
    for md5 in sorted(data.md5):
        digest.update(f"{md5}\n".encode())
    return f"sha256:{digest.hexdigest()[:16]} ({len(data.md5)} image/mask pairs)"
