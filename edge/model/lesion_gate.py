"""Is this a skin lesion the model knows? A distance on the model's own features, NumPy only.

``convert`` fits it on the pooled features of the training side of the run (the file's second output),
sets its threshold so that at most ``max_refused`` of each collection's validation images are refused,
and stores it in the contract; the edge scores every image with it, ``recalibrate`` refits the threshold
on a clinic's own images. No second network, nothing that imports TensorFlow.

The score is the Mahalanobis distance of a feature vector, scaled to unit length (its direction, not
how strongly the network fired), under a probabilistic PCA model of the training features (``k``
principal directions with their own variances, one shared variance for the rest), divided by the
feature dimension: about 1 for images like the training ones, far more for a face, a wall or a
document, whose features point off the directions dermoscopy spans. A file that averages models of several
input sizes gives the gate one model's share of its features (``start``): at 224 px, sharp dermoscopy sits
nearly as far from the features of the mostly-thumbnail training images as photographs do.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

__all__ = ["LesionGate", "threshold_for"]


def _unit(features: np.ndarray) -> np.ndarray:
    """Feature vectors scaled to unit length (the gate reads their direction)."""
    f = np.asarray(features, dtype=np.float32)
    return f / (np.linalg.norm(f, axis=-1, keepdims=True) + 1e-6)


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(np.asarray(array, dtype="<f2").tobytes()).decode()


def _unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(text), dtype="<f2").astype(np.float32)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"lesion gate array holds {data.size} values, expected {int(np.prod(shape))}")
    return data.reshape(shape)


@dataclass(frozen=True)
class LesionGate:
    """A PPCA distance on the model's pooled features and the threshold above which it refuses.

    Attributes:
        mean: (D,) mean training feature.
        components: (D, k) orthonormal principal directions.
        variances: (k,) the training features' variance along each direction.
        residual_variance: the mean variance left off those directions (per dimension).
        threshold: scores above this read "not a skin lesion".
        start: the gate reads the file's features ``start`` to ``start + dims`` (0: from the first).
    """

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    residual_variance: float
    threshold: float = float("inf")
    start: int = 0

    @property
    def dims(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def fit(cls, features: np.ndarray, k: int = 32, span: tuple[int, int] | None = None) -> LesionGate:
        """Fit the distance to ``features`` (N, D) of in-distribution images, or to their columns ``span``
        (start, stop); the threshold stays open.

        ``k`` shrinks to what N and D allow (fewer than N - 1 and D directions)."""
        start, stop = span or (0, np.shape(features)[-1])
        x = np.asarray(features, dtype=np.float64)[..., start:stop]
        if x.ndim == 2:
            x = _unit(x).astype(np.float64)
        if x.ndim != 2 or len(x) < 3 or x.shape[1] < 2:
            raise ValueError(f"need at least 3 feature vectors of 2 or more values, got shape {x.shape}")
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        var = s**2 / (len(x) - 1)
        k = max(1, min(k, len(x) - 2, x.shape[1] - 1))
        residual = float(var[k:].sum() / max(x.shape[1] - k, 1))
        floor = max(residual, 1e-6)
        return cls(mean.astype(np.float32), vt[:k].T.astype(np.float32),
                   np.maximum(var[:k], floor).astype(np.float32), floor, start=start)  # fmt: skip

    def score(self, features: np.ndarray) -> np.ndarray | float:
        """Distance of one feature vector (a float) or of (N, D) vectors (an array), as the file gives
        them; higher is stranger."""
        centred = _unit(np.asarray(features)[..., self.start : self.start + self.dims]) - self.mean
        proj = centred @ self.components
        along = (proj**2 / self.variances).sum(axis=-1)
        off = np.maximum((centred**2).sum(axis=-1) - (proj**2).sum(axis=-1), 0.0) / self.residual_variance
        out = (along + off) / self.dims
        return float(out) if np.ndim(out) == 0 else out

    def refuses(self, score: float) -> bool:
        return score > self.threshold

    def with_threshold(self, threshold: float) -> LesionGate:
        return replace(self, threshold=float(threshold))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the arrays as base64 float16 (the contract carries it)."""
        return {
            "method": "ppca_mahalanobis_unit",
            "dims": self.dims,
            **({"start": self.start} if self.start else {}),
            "k": int(self.components.shape[1]),
            "threshold": round(float(self.threshold), 4),
            "residual_variance": float(self.residual_variance),
            "mean": _pack(self.mean),
            "components": _pack(self.components),
            "variances": _pack(self.variances),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LesionGate:
        """Read back :meth:`to_dict`. Raises ValueError on a malformed entry."""
        try:
            if data["method"] != "ppca_mahalanobis_unit":
                raise ValueError(f"unknown lesion gate method {data['method']!r}")
            dims, k = int(data["dims"]), int(data["k"])
            gate = cls(
                _unpack(data["mean"], (dims,)),
                _unpack(data["components"], (dims, k)),
                _unpack(data["variances"], (k,)),
                float(data["residual_variance"]),
                float(data["threshold"]),
                int(data.get("start", 0)),
            )
        except (KeyError, TypeError, ValueError, base64.binascii.Error) as exc:
            raise ValueError(f"malformed lesion gate: {exc}") from exc
        if gate.start < 0:
            raise ValueError("malformed lesion gate: negative start")
        if gate.residual_variance <= 0 or not np.all(gate.variances > 0):
            raise ValueError("malformed lesion gate: variances must be positive")
        return gate


def threshold_for(scores_by_group: Iterable[np.ndarray], max_refused: float = 0.02) -> float:
    """The lowest threshold that refuses at most ``max_refused`` of every group's scores (e.g. each
    collection's validation images): the largest of the groups' (1 - max_refused) quantiles.

    A group of fewer than ``1 / max_refused`` images cannot resolve that share (its quantile is its largest
    score, one outlier), so it sets the threshold only when no group is large enough: PH2's 24 validation
    images left a 224 px file refusing a third of the non-lesion photos it should refuse.
    """
    groups = [np.asarray(s, dtype=np.float64) for s in scores_by_group if len(s)]
    if not groups:
        raise ValueError("no scores to set the lesion gate's threshold on")
    large = [g for g in groups if max_refused > 0 and len(g) * max_refused >= 1]
    return max(float(np.quantile(g, 1.0 - max_refused, method="higher")) for g in large or groups)
