"""Labels that allow a set of classes: how a benign/malignant collection trains an eight-class model.

A benign/malignant image does not say which of the eight classes it is, only which group: "malignant"
allows the contract's malignant classes, "benign" the others. Its loss is the negative log of the summed
probability of the classes its label allows (:func:`set_valued_crossentropy`); for a label naming one class
that is the usual cross-entropy, so one loss trains on every collection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.datasets import BINARY_LABELS
from edge.model.contract import ModelContract

__all__ = ["SET_LABELS", "allowed_classes", "malignant_rows", "set_valued_crossentropy"]

SET_LABELS = BINARY_LABELS  # ("benign", "malignant"): each allows a set of the contract's classes


def allowed_classes(kinds: tuple[str, ...], contract: ModelContract) -> np.ndarray:
    """(len(kinds), classes) float32 0/1: which of ``contract.labels`` each label in ``kinds`` allows (a class
    label itself; "benign" or "malignant" the contract's benign or malignant classes).

    Raises:
        ValueError: a label that is neither a class nor a set label, or a set label without malignant classes.
    """
    classes = contract.labels
    malignant = np.isin(np.arange(len(classes)), list(contract.malignant_indices))
    table = np.zeros((len(kinds), len(classes)), np.float32)
    for i, kind in enumerate(kinds):
        if kind in classes:
            table[i, classes.index(kind)] = 1
        elif kind in SET_LABELS and malignant.any() and not malignant.all():
            table[i] = malignant if kind == "malignant" else ~malignant
        else:
            raise ValueError(f"label {kind!r} is not one of the classes {list(classes)} nor benign/malignant")
    return table


def malignant_rows(allowed: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Which rows of an ``allowed`` table (one per image) are malignant: they allow no benign class."""
    benign = ~np.isin(np.arange(allowed.shape[1]), list(contract.malignant_indices))
    return allowed[:, benign].sum(1) == 0


def set_valued_crossentropy(allowed: Any, logits: Any) -> Any:
    """-log of the summed softmax probability of the allowed classes, per image (a Keras loss: targets first)."""
    from keras import ops

    allowed = ops.cast(allowed, logits.dtype)
    kept = ops.where(allowed > 0, logits, ops.full_like(logits, -1e4))  # finite: float16 logits stay finite
    return ops.logsumexp(logits, axis=-1) - ops.logsumexp(kept, axis=-1)
