"""Transfer learning in two phases (head, then fine-tune) with leak-free validation."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.calibration import (
    cross_fitted_ece,
    expected_calibration_error,
    fit_temperature,
    risk_threshold_for_sensitivity,
)
from edge.classifier import calibrated_probabilities
from edge.contract import MALIGNANT_DIAGNOSES, ModelContract, load_contract, save_contract
from training.best_epoch import BestEpoch
from training.datasets import DatasetError, load_dataset, map_labels
from training.splits import LoadedImages, duplicate_groups, fingerprint, leaks_into, load_images, split_indices

__all__ = ["TrainConfig", "train"]

log = logging.getLogger(__name__)

TEACHER_SHARE = 0.5  # with --teacher, the targets are this much the teachers' probabilities, the rest the label


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    format: str = "auto"
    task: str = "multiclass"  # or "binary"
    arch: str = "small"
    weights: str = "imagenet"
    image_size: int = 224
    head_epochs: int = 3
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 3e-4
    val_fraction: float = 0.2
    seed: int = 0
    patience: int = 4
    balance: str = "weights"  # "weights" (class-weighted loss), "sampling" (classes drawn equally often) or "none"
    max_images: int = 0  # 0 = all; for quick runs and tests
    extra_data: tuple[str, ...] = ()  # training-only datasets, labels mapped to the main ones
    pretrain_epochs: int = 0  # >0: train on extra_data alone first, then on data alone; 0: mix them
    teachers: tuple[str, ...] = ()  # run folders on the same split whose averaged answers are distilled
    sensitivity: float = 0.9  # the malignant sensitivity the risk threshold is chosen for
    color_constancy: str = "none"  # or "shades_of_gray": part of the preprocessing, stored in the contract
    white_balance: float = 0.0  # augmentation: each RGB channel scaled by up to x/÷ (1 + this), a lamp or camera change


RESAMPLED_SHARE = 0.5  # of training images rotated and zoomed; the rest keep the sharpness they have at the edge


def _augmenter(seed: int, white_balance: float = 0.0):
    """Flips, brightness and contrast for every image; free rotation and zoom for a random half.

    Rotation and zoom resample (smooth) the image. Had every training image been resampled, the
    model would learn smoothed images only and meet sharper ones at validation and at the edge
    (docs/BENCHMARKS.md: resampling half instead of all gained 4–14 points of balanced accuracy at 224 px).
    ``white_balance`` > 0 also scales each RGB channel of every image by a factor drawn log-uniformly
    within x/÷ (1 + white_balance): the diagonal (von Kries) model of another lamp or camera white balance.
    """
    import keras
    import tensorflow as tf

    exact = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed),
            keras.layers.RandomContrast(0.15, seed=seed),
        ],
        name="augment_exact",
    )
    resample = keras.Sequential(
        [
            keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
            keras.layers.RandomZoom((-0.25, 0.1), fill_mode="reflect", seed=seed),
        ],
        name="augment_resample",
    )

    log_gain = float(np.log1p(white_balance))  # gains drawn log-uniformly in [1/(1+wb), 1+wb]

    def augment(x, training: bool = True):
        x = exact(x, training=training)
        if log_gain and training:
            x = x * tf.exp(tf.random.uniform((tf.shape(x)[0], 1, 1, 3), -log_gain, log_gain, seed=seed))
        pick = tf.random.uniform((tf.shape(x)[0], 1, 1, 1), seed=seed) < RESAMPLED_SHARE
        return tf.where(pick, resample(x, training=training), x)

    return augment


def _dataset(images: np.ndarray, y: np.ndarray, batch: int, augment, seed: int, balanced: bool = False):
    """Batches of (float images, targets), augmented. ``balanced`` draws every class equally often,
    without end (minority images repeat more often): give fit() ``steps_per_epoch``."""
    import tensorflow as tf

    if balanced:
        label = y.argmax(1)
        per_class = [
            tf.data.Dataset.from_tensor_slices((images[label == c], y[label == c]))
            .shuffle(int((label == c).sum()), seed=seed)
            .repeat()
            for c in np.unique(label)
        ]
        ds = tf.data.Dataset.sample_from_datasets(per_class, seed=seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices((images, y)).shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, t: (tf.cast(x, tf.float32), t), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(
            lambda x, t: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0), t),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return ds.prefetch(2)


def _class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n).astype(float)
    w = len(y) / (n * np.maximum(counts, 1))
    return {i: float(w[i]) for i in range(n)}


def train(config: TrainConfig) -> Path:
    """Train, evaluate and write a run folder; returns its path.

    Raises:
        DatasetError: the data cannot be used (missing, empty, a single class).
    """
    import keras
    from sklearn.metrics import balanced_accuracy_score

    from training import evaluate
    from training.model import build_classifier, reparametrize_batchnorm, resolve_weights

    started = time.time()
    keras.utils.set_random_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)

    dataset = load_dataset(config.data, config.format, "binary" if config.task == "binary" else "multiclass")
    samples = list(dataset.samples)
    if config.max_images and len(samples) > config.max_images:
        rng = np.random.default_rng(config.seed)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), config.max_images, replace=False))]
    labels = dataset.labels
    malignant = tuple(name for name in labels if name.lower() in MALIGNANT_DIAGNOSES)
    contract = ModelContract(
        task="classify",
        labels=labels,
        arch=f"mobilenet_v3_{config.arch}",
        image_size=config.image_size,
        color_constancy=config.color_constancy,
        malignant_labels=malignant,
    )
    log.info("reading %d images from %s (%s)", len(samples), config.data, dataset.format)
    loaded = load_images(samples, contract)
    if len(loaded.samples) < 2:
        raise DatasetError(f"only {len(loaded.samples)} readable images in {config.data}")
    y = np.array([labels.index(s.label) for s in loaded.samples])
    if len(np.unique(y)) < 2:
        raise DatasetError(f"{config.data} has readable images of a single class only")
    groups = duplicate_groups(loaded)
    train_idx, val_idx = split_indices(y, groups, config.val_fraction, config.seed)
    assert not set(groups[train_idx]) & set(groups[val_idx]), "a duplicate group straddles the split"
    log.info(
        "split: %d train / %d validation images; %d near-duplicate groups kept together",
        len(train_idx), len(val_idx), int((np.bincount(groups) > 1).sum()),
    )  # fmt: skip
    x_tr, y_tr, x_va, y_va = loaded.images[train_idx], y[train_idx], loaded.images[val_idx], y[val_idx]
    fingerprints = [fingerprint(loaded)]
    x_pre, y_pre = x_tr[:0], y_tr[:0]
    for extra in config.extra_data:
        more = _extra_training_data(extra, config, contract, loaded.subset(val_idx))
        fingerprints.append(fingerprint(more))
        x_pre = np.concatenate([x_pre, more.images])
        y_pre = np.concatenate([y_pre, [labels.index(s.label) for s in more.samples]]).astype(int)
    if not config.pretrain_epochs:  # mixed into every epoch
        x_tr, y_tr, x_pre, y_pre = np.concatenate([x_tr, x_pre]), np.concatenate([y_tr, y_pre]), x_pre[:0], y_pre[:0]
    one_hot = np.eye(len(labels), dtype="float32")
    t_tr, t_va, t_pre = one_hot[y_tr], one_hot[y_va], one_hot[y_pre]  # targets
    if config.teachers:
        soft = _teacher_probabilities(config.teachers, loaded.subset(train_idx), loaded.subset(val_idx), labels)
        t_tr[: len(soft)] = TEACHER_SHARE * soft + (1 - TEACHER_SHARE) * t_tr[: len(soft)]  # extra data: labels

    model, backbone = build_classifier(
        len(labels), config.image_size, config.arch, resolve_weights(config.weights, config.arch)
    )
    if config.weights != "none":
        n_bn = reparametrize_batchnorm(backbone, x_tr[np.random.default_rng(0).permutation(len(x_tr))[:256]])
        log.info("re-parametrised %d batch-norm layers for fine-tuning", n_bn)
    augment = _augmenter(config.seed, config.white_balance)
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    history: dict[str, list[float]] = {}
    pretrain_history: dict[str, list[float]] = {}

    def fit(x: np.ndarray, t: np.ndarray, epochs: int, lr: float, callbacks: list, record: dict, cosine: bool) -> None:
        # class weights follow the label: it keeps the largest share of a soft target
        weights = _class_weights(t.argmax(1), len(labels)) if config.balance == "weights" else None
        steps = int(np.ceil(len(x) / config.batch_size))  # an epoch: as many images as there are
        if cosine:  # decay from lr to zero over this phase
            lr = keras.optimizers.schedules.CosineDecay(lr, epochs * steps)
        model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=1e-4), loss=loss, metrics=["accuracy"])
        balanced = config.balance == "sampling"
        h = model.fit(
            _dataset(x, t, config.batch_size, augment, config.seed, balanced=balanced),
            steps_per_epoch=steps if balanced else None,
            validation_data=(x_va.astype("float32"), t_va), epochs=epochs,
            class_weight=weights, callbacks=callbacks, verbose=2,
        )  # fmt: skip
        for key, values in h.history.items():
            record.setdefault(key, []).extend(float(v) for v in values)

    if len(y_pre):
        # Domain pre-training: the backbone learns dermoscopy from the larger collection first,
        # then fine-tunes on DATA alone, so DATA's class balance is what the model ends with.
        log.info("phase 0: training on %d extra images for %d epochs", len(y_pre), config.pretrain_epochs)
        backbone.trainable = False
        fit(x_pre, t_pre, 1, 1e-3, [], pretrain_history, cosine=False)
        backbone.trainable = True
        fit(x_pre, t_pre, config.pretrain_epochs, config.learning_rate, [], pretrain_history, cosine=True)

    best = BestEpoch(
        lambda m: balanced_accuracy_score(y_va, evaluate.predict_logits(m, x_va).argmax(1)),
        history, config.patience, name="balanced accuracy", key="val_balanced_accuracy",
    )  # fmt: skip
    if config.head_epochs and config.weights != "none":
        backbone.trainable = False
        log.info("phase 1: training the head for %d epochs", config.head_epochs)
        fit(x_tr, t_tr, config.head_epochs, 1e-3, [best.callback()], history, cosine=False)
    backbone.trainable = True
    if config.epochs:
        log.info("phase 2: fine-tuning everything for up to %d epochs", config.epochs)
        best.reset_patience(config.epochs)  # the first half does not count: the cosine rate is still high
        fit(x_tr, t_tr, config.epochs, config.learning_rate, [best.callback()], history, cosine=True)
    best.restore(model)

    logits = evaluate.predict_logits(model, x_va)
    temperature = fit_temperature(logits, y_va)
    probs = calibrated_probabilities(logits, temperature)
    risk_threshold = contract.risk_threshold
    if malignant:
        risk = probs[:, list(contract.replace(malignant_labels=malignant).malignant_indices)].sum(1)
        risk_threshold = risk_threshold_for_sensitivity(
            risk, np.isin(y_va, contract.malignant_indices), config.sensitivity
        )
    contract = contract.replace(
        temperature=round(temperature, 4),
        risk_threshold=float(np.floor(risk_threshold * 1e4) / 1e4),  # rounding up could unflag a case
        data_fingerprint=" + ".join(fingerprints),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    val_metrics = evaluate.classification_metrics(y_va, probs, contract)
    contract = contract.replace(
        metrics={
            k: round(val_metrics[k], 4) for k in ("accuracy", "balanced_accuracy", "macro_auc") if k in val_metrics
        }
    )
    model.save(out / "model.keras")
    save_contract(contract, out / "contract.json")
    split = {
        "train": [str(loaded.samples[i].path) for i in train_idx],
        "validation": [str(loaded.samples[i].path) for i in val_idx],
        "validation_labels": [labels[i] for i in y_va],
    }
    (out / "split.json").write_text(json.dumps(split))
    metrics = {
        "validation": val_metrics,
        "ece_uncalibrated": expected_calibration_error(calibrated_probabilities(logits, 1.0), y_va),
        "ece_calibrated_crossfit": cross_fitted_ece(logits, y_va),
        "temperature": temperature,
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "n_skipped": len(loaded.skipped),
        "skipped": loaded.skipped,
        "best_epoch": best.best_epoch,
        "history": history,
        "pretrain_history": pretrain_history,
        "train_seconds": time.time() - started,
        "config": dataclasses.asdict(config),
    }
    evaluate.save_plots(out, y_va, probs, contract, history)
    evaluate.write_model_card(out, contract, metrics, dataclasses.asdict(config) | {"format": dataset.format})
    (out / "report.txt").write_text(_report(val_metrics))
    log.info(
        "validation: accuracy %.3f, balanced accuracy %.3f, macro AUC %s; wrote %s",
        val_metrics["accuracy"], val_metrics["balanced_accuracy"], val_metrics.get("macro_auc", "n/a"), out,
    )  # fmt: skip
    return out


def _extra_training_data(path: str, config: TrainConfig, contract: ModelContract, val: LoadedImages) -> LoadedImages:
    """Images from another collection for training only, minus any copy of a validation image."""
    extra = load_dataset(path, "auto", "binary" if config.task == "binary" else "multiclass")
    samples = map_labels(list(extra.samples), contract.labels)
    if not samples:
        raise DatasetError(f"no image of {path} has a label the model knows ({list(contract.labels)})")
    loaded = load_images(samples, contract)
    leak = leaks_into(loaded, val)
    log.info(
        "extra training data %s: %d images, %d left out as copies of validation images", path, len(samples), leak.sum()
    )
    return loaded.subset(np.nonzero(~leak)[0])


def _teacher_probabilities(
    runs: tuple[str, ...], train: LoadedImages, val: LoadedImages, labels: tuple[str, ...]
) -> np.ndarray:
    """The teachers' averaged calibrated probabilities for the training images.

    A teacher must have been validated on exactly this validation split (same data and seed):
    then none of these images ever trained it, and its answers carry no validation label.
    """
    from training.evaluate import run_probabilities

    ours = {s.path.resolve() for s in val.samples}
    y = np.array([labels.index(s.label) for s in train.samples])
    probs = []
    for run in map(Path, runs):
        if not (run / "model.keras").is_file() or not (run / "split.json").is_file():
            raise DatasetError(f"teacher {run} is not a training run folder (model.keras, split.json)")
        contract = load_contract(run / "contract.json")
        if contract.labels != labels:
            raise DatasetError(f"teacher {run} has other labels ({list(contract.labels)}) than the data")
        theirs = {Path(p).resolve() for p in json.loads((run / "split.json").read_text())["validation"]}
        if theirs != ours:
            raise DatasetError(f"teacher {run} was validated on another split: train it on the same data and --seed")
        probs.append(run_probabilities(run, contract, train.samples))
        log.info("teacher %s: accuracy %.3f on the training images", run, (probs[-1].argmax(1) == y).mean())
    return np.mean(probs, axis=0).astype("float32")


def _report(m: dict[str, Any]) -> str:
    lines = [f"{'class':32s} precision recall    f1  support"]
    for name, c in m["per_class"].items():
        lines.append(f"{name:32s} {c['precision']:9.3f} {c['recall']:6.3f} {c['f1']:5.3f} {c['support']:8d}")
    lines.append(f"accuracy {m['accuracy']:.3f}  balanced accuracy {m['balanced_accuracy']:.3f}")
    return "\n".join(lines) + "\n"
