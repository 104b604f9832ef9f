"""Fit the "not a skin lesion" gate of a converted classifier and put it in its contract."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from convert.features import expose_features
from convert.fidelity import as_files
from edge.model.contract import ModelContract
from edge.model.lesion_gate import LesionGate, threshold_for
from edge.model.runtime import TFLiteModel

__all__ = ["file_features", "fit_lesion_gate"]

log = logging.getLogger(__name__)


def file_features(converted: bytes, images: np.ndarray) -> np.ndarray:
    """(N, D) pooled features of ``images`` as the file computes them (its second output)."""
    with as_files({"candidate": expose_features(converted)}) as paths:
        model = TFLiteModel(paths["candidate"])
        out = []
        for image in images:
            model(image)
            out.append(model.features())
        return np.stack(out)


def fit_lesion_gate(
    contract: ModelContract,
    converted: bytes,
    training: np.ndarray,
    validation: np.ndarray,
    validation_collection: np.ndarray,
    collection_names: tuple[str, ...],
    max_refused: float = 0.02,
    k: int = 32,
    span: tuple[int, int] | None = None,
) -> tuple[ModelContract, dict[str, Any]]:
    """Fit the gate on the file's features of ``training`` images; set its threshold so that at most
    ``max_refused`` of each collection's ``validation`` images are refused (each collection large enough to
    resolve that share: :func:`~edge.model.lesion_gate.threshold_for`); on the features' columns ``span`` alone
    when given.

    Returns:
        (contract with ``lesion_gate``, a report: threshold, images fitted on, refused share per collection).
    """
    gate = LesionGate.fit(file_features(converted, training), k=k, span=span)
    scores = gate.score(file_features(converted, validation))
    groups = {name: scores[validation_collection == i] for i, name in enumerate(collection_names)}
    gate = gate.with_threshold(threshold_for(groups.values(), max_refused))
    refused = {name: round(float((s > gate.threshold).mean()), 4) for name, s in groups.items() if len(s)}
    log.info("lesion gate: %d features, k=%d, threshold %.2f; refuses %s of the validation images",
             gate.dims, k, gate.threshold, ", ".join(f"{v:.1%} ({n})" for n, v in refused.items()))  # fmt: skip
    report = {"threshold": round(gate.threshold, 4), "fitted_on": len(training), "k": k,
              "features": [gate.start, gate.start + gate.dims],
              "max_refused": max_refused, "validation_refused": refused}  # fmt: skip
    return contract.replace(lesion_gate=gate.to_dict()), report
