"""Lesion segmentation metrics, as scored by the ISIC 2018 challenge (Task 1). NumPy only.

* Jaccard index (IoU) per image, averaged over images;
* thresholded Jaccard: a per-image Jaccard below 0.65 counts as 0 (the Task 1 ranking metric);
* Dice coefficient per image, averaged.

An image whose prediction and ground truth are both empty scores 1 (nothing to find, nothing found).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ISIC_JACCARD_THRESHOLD", "dice", "jaccard", "mask_agreement", "segmentation_metrics"]

ISIC_JACCARD_THRESHOLD = 0.65


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred) > 0, np.asarray(truth) > 0
    if pred.shape != truth.shape:
        raise ValueError(f"prediction and ground truth masks differ in shape: {pred.shape} vs {truth.shape}")
    return pred, truth


def jaccard(pred: np.ndarray, truth: np.ndarray) -> float:
    """|A and B| / |A or B| of two binary masks (nonzero = lesion); 1.0 when both are empty."""
    pred, truth = _pair(pred, truth)
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2 |A and B| / (|A| + |B|) of two binary masks; 1.0 when both are empty."""
    pred, truth = _pair(pred, truth)
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, truth).sum() / total)


def segmentation_metrics(
    preds: Sequence[np.ndarray] | np.ndarray,
    truths: Sequence[np.ndarray] | np.ndarray,
    threshold: float = ISIC_JACCARD_THRESHOLD,
) -> dict[str, Any]:
    """ISIC 2018 Task 1 scores over a set of images.

    Args:
        preds: binary predicted masks (nonzero = lesion), one per image.
        truths: the ground-truth masks, same shapes.
        threshold: per-image Jaccard below this counts as 0 in ``thresholded_jaccard``.

    Returns:
        ``n``, ``mean_jaccard``, ``thresholded_jaccard``, ``mean_dice``, ``min_jaccard``,
        ``below_threshold`` (how many images scored under ``threshold``) and ``per_image_jaccard``.
    """
    if len(preds) != len(truths):
        raise ValueError(f"{len(preds)} predictions for {len(truths)} ground-truth masks")
    if len(preds) == 0:
        raise ValueError("no masks to score")
    j = np.array([jaccard(p, t) for p, t in zip(preds, truths)])
    d = np.array([dice(p, t) for p, t in zip(preds, truths)])
    return {
        "n": int(len(j)),
        "mean_jaccard": float(j.mean()),
        "thresholded_jaccard": float(np.where(j >= threshold, j, 0.0).mean()),
        "mean_dice": float(d.mean()),
        "min_jaccard": float(j.min()),
        "below_threshold": int((j < threshold).sum()),
        "jaccard_threshold": threshold,
        "per_image_jaccard": [round(float(v), 4) for v in j],
    }


def mask_agreement(a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray) -> dict[str, float]:
    """How alike two models' masks are on the same images: mean and min per-image IoU."""
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"need the same, nonzero number of masks from both models, got {len(a)} and {len(b)}")
    ious = np.array([jaccard(x, y) for x, y in zip(a, b)])
    return {"mean_iou": float(ious.mean()), "min_iou": float(ious.min()), "n": int(len(ious))}
