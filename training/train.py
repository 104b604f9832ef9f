"""Transfer learning in two phases (head, then fine-tune) with leak-free validation."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.datasets import ISIC2019_CLASSES, DatasetError, Sample, load_dataset, map_labels
from edge.model.calibration import (
    cross_fitted_ece,
    expected_calibration_error,
    fit_temperature,
    risk_threshold_for_sensitivity,
)
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import MALIGNANT_DIAGNOSES, ModelContract
from training.best_epoch import BestEpoch
from training.config import TrainConfig, config_from
from training.distribute import StrategyError, place
from training.fitloop import Fit, TrainingInterrupted, fit_phases, phases
from training.labels import SET_LABELS, allowed_classes, malignant_rows, set_valued_crossentropy
from training.pipeline import cache_dir, image_dataset
from training.runfolder import RunFolder
from training.runstate import RunState, drop_checkpoint, load_state
from training.splits import duplicate_groups, fingerprint, held_out_but_trained, load_images, split_indices

__all__ = ["TrainConfig", "TrainingInterrupted", "augmenter", "read_collections", "resume", "split_parts", "train"]

log = logging.getLogger(__name__)

RESAMPLED_SHARE = 0.5  # of training images rotated and zoomed; the rest keep the sharpness they have at the edge


def augmenter(seed: int, white_balance: float = 0.0):
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


def _sample_weights(y: np.ndarray, classes: int) -> np.ndarray:
    """Each image's weight: n / (classes x its class's count) for a class label (a class-weighted loss),
    1 for a benign/malignant label (y >= classes)."""
    one = y < classes
    counts = np.bincount(y[one], minlength=classes).astype(float)
    w = one.sum() / (classes * np.maximum(counts, 1))
    return np.where(one, w[np.minimum(y, classes - 1)], 1.0).astype("float32")


def resume(run: str | Path) -> Path:
    """Continue an interrupted run from its last finished epoch, with its configuration and split.

    Raises:
        DatasetError: ``run`` has no checkpoint, or its data changed since it started.
    """
    state = load_state(Path(run))
    if state is None:
        done = RunFolder(run).model_file.is_file()
        raise DatasetError(f"{run} {'finished already' if done else 'holds no checkpoint'}: nothing to resume")
    if state.config.get("task") == "segment":
        from training.config import SegmentConfig
        from training.segment.train import train_segmenter

        return train_segmenter(config_from(SegmentConfig, state.config, out=str(run)), state)
    return train(config_from(TrainConfig, state.config, out=str(run)), state)


def train(config: TrainConfig, state: RunState | None = None) -> Path:
    """Train, evaluate and write a run folder; returns its path. The stages: :func:`prepare` (data and
    split), :func:`fit` (the two phases, a checkpoint an epoch), :func:`evaluate_run` (calibrate and score)
    and :func:`write_run`.

    A checkpoint is written after every epoch; ``state`` (from ``resume``) continues from one.

    Raises:
        DatasetError: the data cannot be used (missing, empty, a single class) or changed since ``state``.
        StrategyError: the requested tf.distribute strategy or mixed precision is not available here.
        TrainingInterrupted: SIGTERM or SIGINT; resume with ``resume(out)``.
    """
    import keras

    from training.model import resolve_weights

    started = time.time()
    placement = place(config.strategy)
    if config.mixed_precision and not placement.gpus:
        raise StrategyError("--mixed-precision needs a GPU: float16 on a CPU is slower, not faster")
    backbone_weights = resolve_weights(config.weights, config.arch)  # fails now, not after reading the data
    keras.utils.set_random_seed(config.seed)
    data = prepare(config)
    if state is not None and state.split_digest != data.split_digest:
        raise DatasetError(f"the data of {config.out} changed since the run started (another split): start a new run")
    state = state or RunState(config=dataclasses.asdict(config), split_digest=data.split_digest)
    model, best = fit(config, data, state, placement, backbone_weights)
    scored = evaluate_run(model, data, config)
    if placement.is_chief:
        write_run(Path(config.out), model, data, scored, config, state, best, placement, time.time() - started)
    return Path(config.out)


@dataclass
class Prepared:
    """The data stage's result: every image read once, its label, collection and part of the split."""

    loaded: Any  # training.splits.LoadedImages
    contract: ModelContract  # labels, input and preprocessing; calibration comes later
    y: np.ndarray  # label of each image: an index into ``kinds`` (a class when below len(labels))
    origin: np.ndarray  # collection index of each image
    collections: list[str]
    data_format: str
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    split: dict[str, list[str]]  # what split.json records
    split_digest: str
    kinds: tuple[str, ...]  # the classes, then any set labels ("benign", "malignant")
    allowed: np.ndarray  # (len(kinds), classes): the classes each label allows

    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels

    def one_class(self, idx: np.ndarray) -> np.ndarray:
        """Which images of ``idx`` have a label naming one class (those class metrics can score)."""
        return self.y[idx] < len(self.labels)

    def malignant(self, idx: np.ndarray) -> np.ndarray:
        """Whether each image of ``idx`` is malignant, by its label (a class or benign/malignant)."""
        return malignant_rows(self.allowed[self.y[idx]], self.contract)


def prepare(config: TrainConfig) -> Prepared:
    """Read every collection, map the labels, split into fixed lesion-grouped parts, check for leaks.

    Raises:
        DatasetError: too few images or classes, or held-out images that trained a ``--weights RUN`` backbone.
    """
    samples, labels, origins, data_format = read_collections(config)
    if config.max_images and len(samples) > config.max_images:
        rng = np.random.default_rng(config.seed)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), config.max_images, replace=False))]
    malignant = tuple(name for name in labels if name.lower() in MALIGNANT_DIAGNOSES)
    contract = ModelContract(
        task="classify",
        labels=labels,
        arch=f"mobilenet_v3_{config.arch.replace('-', '_')}",
        image_size=config.image_size,
        color_constancy=config.color_constancy,
        malignant_labels=malignant,
    )
    collections = [config.data, *config.more_data]
    log.info("reading %d images from %s (%s)", len(samples), " + ".join(collections), data_format)
    loaded = load_images(samples, contract, cache=cache_dir())
    if len(loaded.samples) < 2:
        raise DatasetError(f"only {len(loaded.samples)} readable images in {config.data}")
    kinds = (*labels, *(k for k in SET_LABELS if any(s.label == k for s in loaded.samples)))
    try:
        allowed = allowed_classes(kinds, contract)
    except ValueError as exc:
        raise DatasetError(f"cannot train on benign/malignant labels here: {exc}") from None
    y = np.array([kinds.index(s.label) for s in loaded.samples])
    if len(np.unique(y[y < len(labels)])) < 2:
        raise DatasetError(f"{config.data} has readable images of a single class only")
    groups = duplicate_groups(loaded)  # copies and lesions across collections too: ISIC id, lesion id, content
    origin = np.array([origins[s.path] for s in loaded.samples])
    train_idx, val_idx, test_idx = split_parts(y, origin, groups, config)
    assert not set(groups[train_idx]) & set(groups[val_idx]), "a duplicate group straddles the split"
    if config.train_on:  # the split spans every collection; training uses only these collections' part of it
        keep = np.isin(origin[train_idx], [collections.index(c) for c in config.train_on])
        log.info("training on %s only: %d of %d training images", " + ".join(config.train_on),
                 int(keep.sum()), len(train_idx))  # fmt: skip
        train_idx = train_idx[keep]
        if len(np.unique(y[train_idx])) < 2:
            raise DatasetError(f"--train-on {' '.join(config.train_on)} leaves a single class to train on")
    log.info(
        "split: %d train / %d validation / %d test images; %d near-duplicate groups kept together",
        len(train_idx), len(val_idx), len(test_idx), int((np.bincount(groups) > 1).sum()),
    )  # fmt: skip
    split = {  # resolved paths: convert matches them whatever the working directory
        "train": [str(loaded.samples[i].path.resolve()) for i in train_idx],
        "validation": [str(loaded.samples[i].path.resolve()) for i in val_idx],
        "validation_labels": [kinds[i] for i in y[val_idx]],
    }
    if len(test_idx):
        split["test"] = [str(loaded.samples[i].path.resolve()) for i in test_idx]
    earlier = RunFolder(config.weights).split()  # --weights RUN: its backbone must not have seen our held-out part
    seen = held_out_but_trained(split, earlier) if earlier else []
    if seen:
        raise DatasetError(
            f"{len(seen)} of the images this run holds out for validation or testing trained the backbone of "
            f"{config.weights}, so its scores would flatter: train on the same collections with the same "
            "--test-fraction and --val-fraction as that run"
        )
    split_digest = hashlib.sha256(json.dumps(split).encode()).hexdigest()[:16]
    return Prepared(loaded, contract, y, origin, collections, data_format, train_idx, val_idx, test_idx, split,
                    split_digest, kinds, allowed)  # fmt: skip


def fit(config: TrainConfig, data: Prepared, state: RunState, placement: Any, backbone_weights: Any) -> tuple:
    """Build the model and run the schedule's phases through the shared fit loop (training/fitloop.py):
    validation balanced accuracy chooses the best epoch, a checkpoint an epoch (``state`` resumes one);
    returns (the best epoch's model, its BestEpoch).

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT (after the step in flight).
    """
    import keras
    from sklearn.metrics import balanced_accuracy_score

    from training import evaluate
    from training.model import build_classifier, reparametrize_batchnorm

    labels = data.labels
    resuming = state.epoch > 0 or bool(state.phases_done)
    x_tr, y_tr = data.loaded.images.rows(data.train_idx), data.y[data.train_idx]
    t_tr = data.allowed[y_tr]  # one-hot for a class; the allowed classes for benign/malignant
    one = data.one_class(data.val_idx)  # class scores: the images labelled with one class
    x_va, v_va = data.loaded.images.rows(data.val_idx), data.y[data.val_idx]
    y_va, a_va = v_va[one], data.allowed[v_va]  # the one-class labels; what every label allows

    replicas = placement.replicas
    global_batch = config.batch_size * replicas
    log.info(
        "training on %s: global batch %d (%d per replica), learning rate x%d (%g at its peak)",
        placement.describe(), global_batch, config.batch_size, replicas, config.learning_rate * replicas,
    )  # fmt: skip
    if config.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    with placement.strategy.scope():
        model, backbone = build_classifier(len(labels), config.image_size, config.arch, backbone_weights)
        for layer in backbone.layers:  # batch statistics over the global batch: one model on every replica
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = replicas > 1
        if config.weights != "none" and not resuming:
            n_bn = reparametrize_batchnorm(backbone, x_tr[np.random.default_rng(0).permutation(len(x_tr))[:256]])
            log.info("re-parametrised %d batch-norm layers for fine-tuning", n_bn)
    augment = augmenter(config.seed, config.white_balance)

    def validate() -> dict[str, float]:
        logits = evaluate.predict_logits(model, x_va)
        log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        log_allowed = np.logaddexp.reduce(np.where(a_va > 0, log_p, -np.inf), axis=1)  # log p(label)
        pred = logits[one].argmax(1)
        return {
            "val_loss": float(-log_allowed.mean()),
            "val_accuracy": float((pred == y_va).mean()),
            "val_balanced_accuracy": float(balanced_accuracy_score(y_va, pred)),
        }

    balanced = config.balance == "sampling"
    weights = _sample_weights(y_tr, len(labels)) if config.balance == "weights" else None
    sets = len(data.kinds) > len(labels)  # benign/malignant labels: the set-valued loss (the same on one class)
    job = Fit(
        model, backbone,
        set_valued_crossentropy if sets else keras.losses.CategoricalCrossentropy(from_logits=True),
        batches=lambda seed: image_dataset(x_tr, t_tr, global_batch, seed, augment, balanced=balanced,
                                           weights=weights, strata=y_tr),
        images=len(x_tr), validate=validate, scores=("val_loss", "val_accuracy", "val_balanced_accuracy"),
        select="val_balanced_accuracy", select_name="balanced accuracy", metrics=("accuracy",),
        steps=int(np.ceil(len(x_tr) / global_batch)) if balanced else None,
    )  # fmt: skip
    schedule = phases(config.head_epochs, 1e-3, config.epochs, config.learning_rate, config.weights != "none")
    best = fit_phases(job, schedule, Path(config.out), data.split, state, placement, config.patience,
                      config.batch_size, config.seed)  # fmt: skip
    if config.mixed_precision:  # the run folder holds a float32 model, as convert and the edge expect
        keras.mixed_precision.set_dtype_policy("float32")
        float32, _ = build_classifier(len(labels), config.image_size, config.arch, None)
        float32.set_weights(model.get_weights())
        model = float32
    log.info("final weights %s", _weights_digest(model))  # equal on every worker of a distributed run
    return model, best


@dataclass
class Scored:
    """The evaluation stage's result: the calibrated contract and every figure of the run."""

    contract: ModelContract
    val_probs: np.ndarray
    val_metrics: dict[str, Any]
    test_metrics: dict[str, Any] | None
    by_collection: dict[str, dict[str, Any]]
    ece_uncalibrated: float
    ece_calibrated_crossfit: float
    temperature: float


def evaluate_run(model: Any, data: Prepared, config: TrainConfig) -> Scored:
    """Calibrate on validation (temperature on the images labelled with one class, malignancy threshold for
    ``config.sensitivity`` on every image), then score validation, and the test part once, per collection
    (a benign/malignant collection by its malignancy figures)."""
    from training import evaluate

    y, origin, contract = data.y, data.origin, data.contract
    one = data.one_class(data.val_idx)
    y_va = y[data.val_idx][one]
    logits = evaluate.predict_logits(model, data.loaded.images.rows(data.val_idx))
    temperature = fit_temperature(logits[one], y_va)
    probs = calibrated_probabilities(logits, temperature)
    risk_threshold = contract.risk_threshold
    if contract.malignant_labels:
        risk = probs[:, list(contract.malignant_indices)].sum(1)
        risk_threshold = risk_threshold_for_sensitivity(risk, data.malignant(data.val_idx), config.sensitivity)
    contract = contract.replace(
        temperature=round(temperature, 4),
        risk_threshold=float(np.floor(risk_threshold * 1e4) / 1e4),  # rounding up could unflag a case
        data_fingerprint=fingerprint(data.loaded),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    val_metrics = evaluate.classification_metrics(y_va, probs[one], contract)
    contract = contract.replace(
        metrics={
            k: round(val_metrics[k], 4) for k in ("accuracy", "balanced_accuracy", "macro_auc") if k in val_metrics
        }
    )
    parts = {"validation": (data.val_idx, probs)}
    if len(data.test_idx):  # scored once, at the end: nothing was chosen or calibrated on it
        test_logits = evaluate.predict_logits(model, data.loaded.images.rows(data.test_idx))
        parts["test"] = (data.test_idx, calibrated_probabilities(test_logits, temperature))

    def scored(idx: np.ndarray, p: np.ndarray, ours: np.ndarray) -> dict[str, Any]:
        if data.one_class(idx[ours]).all():
            return evaluate.summary(evaluate.classification_metrics(y[idx][ours], p[ours], contract))
        risk = p[ours][:, list(contract.malignant_indices)].sum(1)  # benign/malignant labels
        return evaluate.malignancy_metrics(risk, data.malignant(idx[ours]), contract.risk_threshold)

    by_collection = {
        name: {part: scored(idx, p, origin[idx] == c) for part, (idx, p) in parts.items() if (origin[idx] == c).any()}
        for c, name in enumerate(data.collections)
    }
    test = None
    if "test" in parts:
        test_one = data.one_class(data.test_idx)
        test = evaluate.classification_metrics(y[data.test_idx][test_one], parts["test"][1][test_one], contract)
    return Scored(contract, probs[one], val_metrics, test, by_collection,
                  expected_calibration_error(calibrated_probabilities(logits[one], 1.0), y_va),
                  cross_fitted_ece(logits[one], y_va), temperature)  # fmt: skip


def write_run(
    out: Path, model: Any, data: Prepared, scored: Scored, config: TrainConfig, state: RunState, best: BestEpoch,
    placement: Any, seconds: float,
) -> None:  # fmt: skip
    """The run folder: model, contract, split, metrics, plots, model card and report; the checkpoint goes."""
    from training import evaluate

    out.mkdir(parents=True, exist_ok=True)
    RunFolder(out).write_model(model, scored.contract, data.split)
    metrics = {
        "validation": scored.val_metrics,
        "test": scored.test_metrics,
        "collections": scored.by_collection,
        "ece_uncalibrated": scored.ece_uncalibrated,
        "ece_calibrated_crossfit": scored.ece_calibrated_crossfit,
        "temperature": scored.temperature,
        "n_train": int(len(data.train_idx)),
        "n_val": int(len(data.val_idx)),
        "n_test": int(len(data.test_idx)),
        "n_skipped": len(data.loaded.skipped),
        "skipped": data.loaded.skipped,
        "best_epoch": best.best_epoch,
        "epochs": state.epoch,
        "history": state.history,
        "train_seconds": seconds,
        "distribution": {
            "strategy": placement.describe(),
            "global_batch": config.batch_size * placement.replicas,
            "replicas": placement.replicas,
        },  # fmt: skip
        "config": dataclasses.asdict(config),
    }
    y_va = data.y[data.val_idx][data.one_class(data.val_idx)]
    evaluate.save_plots(out, y_va, scored.val_probs, scored.contract, state.history, best.best_epoch)
    evaluate.write_model_card(out, scored.contract, metrics, dataclasses.asdict(config) | {"format": data.data_format})
    (out / "report.txt").write_text(_report(scored.val_metrics))
    drop_checkpoint(out)
    m = scored.val_metrics
    log.info(
        "validation: accuracy %.3f, balanced accuracy %.3f, macro AUC %s; wrote %s",
        m["accuracy"], m["balanced_accuracy"], m.get("macro_auc", "n/a"), out,
    )  # fmt: skip


SPLIT_SEED = 0  # the parts do not move with --seed: every seed is selected and scored on the same images


def read_collections(config: TrainConfig) -> tuple[list[Sample], tuple[str, ...], dict[Path, int], str]:
    """DATA and the --also collections: their samples, the label set, each file's collection and the format(s).

    One collection keeps its own labels; several are mapped onto ISIC 2019's eight classes (or benign /
    malignant with --task binary), each label as ISIC 2019 itself files it. Among several, a benign/malignant
    collection keeps "benign" and "malignant": labels that allow a set of the classes (training/labels.py).
    """
    task = "binary" if config.task == "binary" else "multiclass"
    paths = [config.data, *config.more_data]
    datasets = [load_dataset(p, config.format if i == 0 else "auto", task) for i, p in enumerate(paths)]
    if len(datasets) == 1:
        samples, labels = list(datasets[0].samples), datasets[0].labels
    else:
        taxonomy = datasets[0].labels if task == "binary" else ISIC2019_CLASSES
        samples = []
        for ds in datasets:  # a benign/malignant collection keeps its labels: each allows a set of classes
            as_sets = task == "multiclass" and set(ds.labels) <= set(SET_LABELS)
            samples += list(ds.samples) if as_sets else map_labels(list(ds.samples), taxonomy)
        labels = tuple(name for name in taxonomy if any(s.label == name for s in samples))
    origins = {s.path: i for i, ds in enumerate(datasets) for s in ds.samples}
    return samples, labels, origins, " + ".join(ds.format for ds in datasets)


def split_parts(y: np.ndarray, origin: np.ndarray, groups: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, ...]:
    """(train, validation, test) indices, stratified by collection and class, no group across parts.

    The test part (``config.test_fraction`` of each collection) comes first, then the validation part
    (``config.val_fraction`` of all) from the rest; both are fixed: ``config.seed`` moves the training
    only (initial head, shuffling, augmentation), so two seeds differ by what training does, not by data.
    """
    strata = origin * (int(y.max()) + 1) + y
    everything = np.arange(len(y))
    rest, test = everything, everything[:0]
    if config.test_fraction:
        kept, held = split_indices(strata, groups, config.test_fraction, SPLIT_SEED)
        rest, test = everything[kept], everything[held]
    fraction = config.val_fraction / (1 - config.test_fraction)
    train, val = split_indices(strata[rest], groups[rest], fraction, SPLIT_SEED)
    return rest[train], rest[val], test


def _weights_digest(model) -> str:
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def _report(m: dict[str, Any]) -> str:
    lines = [f"{'class':32s} precision recall    f1  support"]
    for name, c in m["per_class"].items():
        lines.append(f"{name:32s} {c['precision']:9.3f} {c['recall']:6.3f} {c['f1']:5.3f} {c['support']:8d}")
    lines.append(f"accuracy {m['accuracy']:.3f}  balanced accuracy {m['balanced_accuracy']:.3f}")
    return "\n".join(lines) + "\n"
