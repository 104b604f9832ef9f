"""Honest evaluation: metrics, calibration, the malignancy operating point, plots and a model card."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from edge.model.calibration import expected_calibration_error
from edge.model.contract import ModelContract
from training.runfolder import RunFolder

__all__ = [
    "auc_interval",
    "classification_metrics",
    "logits_function",
    "predict_logits",
    "save_plots",
    "write_model_card",
]

log = logging.getLogger(__name__)


_INFERENCE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its compiled forward pass


def predict_logits(model, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """A Keras classifier's logits for uint8 or float images, in batches, inference mode.

    The forward pass is compiled once per model: run eagerly, each batch's intermediate tensors
    were left in the allocator's caches (1.5 GB more resident memory for 1,000 images at 224 px).
    """
    import tensorflow as tf

    if model not in _INFERENCE:

        @tf.autograph.experimental.do_not_convert
        def forward(x):
            return model(x, training=False)

        _INFERENCE[model] = tf.function(forward, reduce_retracing=True)
    infer = _INFERENCE[model]
    out = [np.asarray(infer(images[i : i + batch].astype("float32"))) for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]))


def logits_function(source: Path):
    """Preprocessed uint8 images -> logits, from a run folder's Keras model or a converted .tflite file."""
    if source.suffix == ".tflite":
        from edge.model.classifier import Classifier

        clf = Classifier(source, threads=1)
        return lambda images: np.stack([clf.logits(im) for im in images])
    import keras

    model = keras.saving.load_model(RunFolder(source).model_file)
    return lambda images: predict_logits(model, images)


def top1(probs: np.ndarray) -> np.ndarray:
    """Each row's top class, or -1 where classes tie for it: scored as wrong, as the ISIC challenges'
    scoring does (an int8 file's outputs lie on a grid, so its top two can tie; the edge calls such an
    answer uncertain)."""
    pred = probs.argmax(1)
    tied = (probs == probs.max(1, keepdims=True)).sum(1) > 1
    return np.where(tied, -1, pred)


def classification_metrics(
    y: np.ndarray, probs: np.ndarray, contract: ModelContract, risk_threshold: float | None = None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall/F1, AUC, ECE and malignancy scores.

    Top-1 figures count a tie for the top class as wrong (:func:`top1`); ``top1_ties`` says how many."""
    labels = list(contract.labels)
    n = len(labels)
    pred = top1(probs)
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(n), zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(np.mean([np.mean(pred[y == k] == k) for k in np.unique(y)])),
        "top1_ties": int((pred < 0).sum()),
        "per_class": {
            labels[i]: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
            }
            for i in range(n)
        },
        "macro_f1": float(f.mean()),
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=range(n)).tolist(),
        "ece": expected_calibration_error(probs, y),
    }
    present = np.unique(y)
    if len(present) == n:
        out["macro_auc"] = (
            float(skm.roc_auc_score(y, probs[:, 1]))
            if n == 2
            else float(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
        )
    mal = list(contract.malignant_indices)
    if mal:
        risk = probs[:, mal].sum(1)
        is_mal = np.isin(y, mal)
        if 0 < is_mal.sum() < len(y):
            out["malignant_auc"] = float(skm.roc_auc_score(is_mal, risk))
            out["malignant_auc_ci"] = auc_interval(is_mal, risk)
        thr = contract.risk_threshold if risk_threshold is None else risk_threshold
        flagged = risk >= thr
        out["risk_threshold"] = float(thr)
        out["malignant_sensitivity"] = float(flagged[is_mal].mean()) if is_mal.any() else None
        out["malignant_specificity"] = float((~flagged[~is_mal]).mean()) if (~is_mal).any() else None
    return out


def malignancy_metrics(risk: np.ndarray, bad: np.ndarray, threshold: float) -> dict[str, Any]:
    """Malignancy AUC (with its 95 % interval), sensitivity and specificity at ``threshold``: how a set with
    benign/malignant labels only is scored."""
    return {
        "n": int(len(bad)),
        "malignant_auc": float(skm.roc_auc_score(bad, risk)),
        "malignant_auc_ci": auc_interval(bad, risk),
        "malignant_sensitivity": float((risk[bad] >= threshold).mean()),
        "malignant_specificity": float((risk[~bad] < threshold).mean()),
    }


def summary(m: dict[str, Any]) -> dict[str, Any]:
    """The figures of :func:`classification_metrics` that benchmarks tabulate."""
    keys = ("n", "accuracy", "balanced_accuracy", "top1_ties", "malignant_auc", "malignant_auc_ci",
            "malignant_sensitivity", "malignant_specificity")  # fmt: skip
    return {k: m[k] for k in keys if m.get(k) is not None}


def auc_interval(positive: np.ndarray, score: np.ndarray, resamples: int = 1000, seed: int = 0) -> list[float]:
    """The 95 % bootstrap interval of an AUC, positives and negatives resampled apart (their counts fixed).

    With 30 melanomas (PH2) the interval spans about 0.2: a difference between two models smaller
    than the intervals is not shown by that set alone.
    """
    from scipy.stats import rankdata

    positive = np.asarray(positive, bool)
    pos, neg = np.asarray(score)[positive], np.asarray(score)[~positive]
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // len(score))  # resamples at a time: memory stays ~50 MB whatever the set's size
    ranks = []
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        drawn = np.c_[rng.choice(pos, (k, len(pos))), rng.choice(neg, (k, len(neg)))]
        ranks.append(rankdata(drawn, axis=1)[:, : len(pos)].sum(1))  # Mann-Whitney: ties count half
    aucs = (np.concatenate(ranks) - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))
    return [float(v) for v in np.percentile(aucs, [2.5, 97.5])]


def save_plots(
    out_dir: Path,
    y: np.ndarray,
    probs: np.ndarray,
    contract: ModelContract,
    history: dict[str, list],
    best_epoch: int | None = None,
) -> list[Path]:
    """Confusion matrix, ROC curves and training curves as PNG files in ``out_dir``.

    The confusion matrix is row-normalised (recall on the diagonal) with the counts beside; the ROC
    shows benign vs malignant with the contract's operating point, then each class against the rest
    with its size; the curves are numbered as the training log numbers epochs, with the phase switches and
    ``best_epoch`` marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(contract.labels)
    paths = []
    cm = skm.confusion_matrix(y, probs.argmax(1), labels=range(len(labels)))
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(labels), 1.2 + 0.8 * len(labels)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{share[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), [f"{name} ({n})" for name, n in zip(labels, cm.sum(1))])
    ax.set(xlabel="predicted", ylabel="true (images)", title="Validation confusion matrix (share of each true class)")
    fig.tight_layout()
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    mal = list(contract.malignant_indices)
    is_mal = np.isin(y, mal)
    if mal and 0 < is_mal.sum() < len(y):
        risk = probs[:, mal].sum(1)
        fpr, tpr, _ = skm.roc_curve(is_mal, risk)
        ax.plot(fpr, tpr, "k", lw=2.5, label=f"malignant vs benign ({is_mal.sum()} vs {(~is_mal).sum()}, "
                f"AUC {skm.auc(fpr, tpr):.2f})")  # fmt: skip
        flagged = risk >= contract.risk_threshold
        ax.plot((flagged[~is_mal]).mean(), flagged[is_mal].mean(), "ro", ms=8,
                label=f"operating point: risk >= {contract.risk_threshold:.3f}")  # fmt: skip
    for i, name in enumerate(labels):
        n = int((y == i).sum())
        if 0 < n < len(y):
            fpr, tpr, _ = skm.roc_curve(y == i, probs[:, i])
            ax.plot(fpr, tpr, lw=1, alpha=0.7, label=f"{name} (n={n}, AUC {skm.auc(fpr, tpr):.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Validation ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = 1 + np.arange(len(history.get("loss", [])))
    for ax, keys, title in (
        (axes[0], ("loss", "val_loss"), "loss"),
        (axes[1], ("accuracy", "val_accuracy", "val_balanced_accuracy"), "accuracy"),
    ):
        for key in keys:
            if history.get(key):
                ax.plot(epochs[: len(history[key])], history[key], marker=".", label=key)
        phases = history.get("phase", [])
        for k in range(1, len(phases)):
            if phases[k] != phases[k - 1]:
                ax.axvline(epochs[k] - 0.5, color="grey", ls="--", lw=1)
                ax.text(epochs[k] - 0.4, ax.get_ylim()[1], phases[k], fontsize=7, va="top", color="grey")
        if best_epoch is not None and best_epoch > 0:
            ax.axvline(best_epoch, color="green", lw=1, alpha=0.6, label=f"kept: epoch {best_epoch}")
        ax.set(title=title, xlabel="epoch (as in the log)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "training_curves.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def write_model_card(out_dir: Path, contract: ModelContract, metrics: dict[str, Any], config: dict[str, Any]) -> Path:
    """A Markdown model card: data, intended use, metrics on the validation split, limits."""
    val = metrics["validation"]
    rows = "\n".join(
        f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for name, m in val["per_class"].items()
    )
    auc = f"{val['macro_auc']:.3f}" if "macro_auc" in val else "n/a"
    mal = ""
    if "malignant_auc" in val:
        mal = (
            f"- Malignancy risk (sum of {', '.join(contract.malignant_labels)}): AUC {val['malignant_auc']:.3f} "
            f"(95 % interval {val['malignant_auc_ci'][0]:.3f}–{val['malignant_auc_ci'][1]:.3f}); "
            f"threshold {val['risk_threshold']:.3f} gives sensitivity {val['malignant_sensitivity']:.3f}, "
            f"specificity {val['malignant_specificity']:.3f} on validation.\n"
        )
    balance = {"sampling": "classes drawn equally often", "none": "no class balancing"}.get(
        config.get("balance", "weights"), "class-weighted loss"
    )
    white_balance = config.get("white_balance", 0.0)
    jitter = f", white balance within x/÷ {1 + white_balance:.2f}" if white_balance else ""
    more = "".join(f" + `{d}`" for d in config.get("more_data", ()))
    train_on = config.get("train_on", ())
    only = f"; trained on the training part of {' + '.join(f'`{d}`' for d in train_on)} only" if train_on else ""
    text = f"""# Model card: {contract.arch} skin-lesion classifier

**Not a medical device. Decision support at a kiosk only: never a diagnosis.**

## Data
- Source: `{config["data"]}`{more} (format {config["format"]}, task {config["task"]}){only};
  fingerprint {contract.data_fingerprint}.
- Split: stratified, grouped (lesion id, identical files and near-duplicate images stay on one side),
  validation fraction {config["val_fraction"]}, seed {config["seed"]}: {metrics["n_train"]} train /
  {metrics["n_val"]} validation images; {metrics["n_skipped"]} unreadable files skipped.
- Classes: {", ".join(contract.labels)}.

## Model
- {contract.arch} at {contract.image_size}x{contract.image_size}, weights `{config["weights"]}`; head
  {config["head_epochs"]} epochs, then fine-tuning up to {config["epochs"]} epochs; {balance};
  flips and colour jitter{jitter}, free rotation and zoom for half the images.
  Training took {metrics["train_seconds"] / 60:.1f} min.
- Input: RGB uint8, centre square crop ({contract.crop_fraction:.2f} of the short side), resized to
  {contract.image_size}, colour constancy: {contract.color_constancy}; the model rescales inside the graph.
  Output: logits; calibrated with temperature {contract.temperature:.3f} (fitted on validation).

## Validation metrics (held-out split above, not a test set)
- Accuracy {val["accuracy"]:.3f}, balanced accuracy {val["balanced_accuracy"]:.3f}, macro F1 {val["macro_f1"]:.3f},
  macro AUC {auc}.
- Calibration: ECE {metrics["ece_uncalibrated"]:.3f} before, {metrics["ece_calibrated_crossfit"]:.3f} after temperature
  scaling (cross-fitted on two halves of validation).
{mal}
| class | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

![confusion matrix](confusion_matrix.png) ![ROC](roc.png)

## Limits
- Dermoscopy images only; phone photos of skin are out of distribution.
- Public collections under-represent darker skin types; performance there is unknown.
- Validation numbers come from a split of the training collection; expect lower on other clinics' devices.
"""
    path = out_dir / "model_card.md"
    path.write_text(text)
    RunFolder(out_dir).write_metrics(metrics)
    return path
