"""Classify one RGB image with a self-describing ``.tflite`` model: the edge's Python API.

>>> clf = Classifier("models/isic8_int8.tflite")
>>> clf.classify(load_image("lesion.jpg")).label
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from edge.image.preprocess import preprocess
from edge.model.contract import ContractError, ModelContract, readable_label
from edge.model.lesion_gate import LesionGate
from edge.model.modelfile import read_contract
from edge.model.runtime import TFLiteModel

__all__ = [
    "DISCLAIMER",
    "NOT_A_LESION",
    "Classifier",
    "Inference",
    "Prediction",
    "calibrated_probabilities",
    "is_uncertain",
    "malignancy_risk",
    "risk_percentages",
]

log = logging.getLogger(__name__)

DISCLAIMER = "Decision support only: not a diagnosis. Ask a clinician about any lesion that worries you."
NOT_A_LESION = "not a skin lesion"


def calibrated_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Softmax of ``logits / temperature`` along the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def is_uncertain(probabilities: np.ndarray, contract: ModelContract) -> np.ndarray | bool:
    """The one "uncertain" rule: the top class below the contract's ``uncertain_below``, or less than
    ``uncertain_margin`` ahead of the runner-up. One probability vector gives a bool, (N, C) an array."""
    top2 = np.sort(np.asarray(probabilities, dtype=np.float64), axis=-1)[..., -2:]
    out = (top2[..., 1] < contract.uncertain_below) | (top2[..., 1] - top2[..., 0] < contract.uncertain_margin)
    return bool(out) if np.ndim(out) == 0 else out


def malignancy_risk(probabilities: np.ndarray, contract: ModelContract) -> float | None:
    """Summed probability of the contract's malignant classes; None when it names none."""
    idx = contract.malignant_indices
    return float(np.asarray(probabilities)[..., list(idx)].sum(axis=-1)) if idx else None


def risk_percentages(risk: float, threshold: float) -> tuple[str, str]:
    """``risk`` and ``threshold`` as percentages with the fewest decimals (0-2) that keep their order
    true as read: 27.8 % vs 28.3 % is shown as "27.8%" / "28.3%", never "28%" / "28%"."""
    for decimals in range(3):
        shown_risk, shown_threshold = round(risk * 100, decimals), round(threshold * 100, decimals)
        if (shown_risk >= shown_threshold) == (risk >= threshold):
            break
    return f"{shown_risk:.{decimals}f}%", f"{shown_threshold:.{decimals}f}%"


@dataclass(frozen=True)
class Prediction:
    """One classification. Probabilities are calibrated; ``risk`` is the malignancy risk."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    risk: float | None
    flagged: bool  # risk at or above the contract's threshold: suggest a clinician
    uncertain: bool  # top-1 confidence below the contract's floor, or too close to the runner-up
    invoke_ms: float
    total_ms: float
    quality: dict[str, Any] = field(default_factory=dict)
    risk_threshold: float | None = None  # the contract's, where ``flagged`` starts
    lesion_score: float | None = None  # the lesion gate's distance (None: the file has no gate)
    not_lesion: bool = False  # the distance is past the gate's threshold: not what the model knows

    @property
    def risk_text(self) -> tuple[str, str] | None:
        """(risk, threshold) as the percentages every display shows; None without a risk."""
        if self.risk is None or self.risk_threshold is None:
            return None
        return risk_percentages(self.risk, self.risk_threshold)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    @property
    def verdict(self) -> str:
        """A short human reading of the result, always with the not-a-diagnosis caveat nearby."""
        if self.quality.get("retake"):
            return "retake: " + ", ".join(self.quality.get("issues", []))
        if self.not_lesion:
            return NOT_A_LESION
        if self.uncertain:
            return "uncertain"
        return self.label

    def to_dict(self) -> dict[str, Any]:
        texts = self.risk_text
        return {
            "label": self.label,
            "label_name": readable_label(self.label),
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "risk": None if self.risk is None else round(self.risk, 4),
            "risk_threshold": self.risk_threshold,
            "risk_text": texts[0] if texts else None,
            "risk_threshold_text": texts[1] if texts else None,
            "flagged": self.flagged,
            "uncertain": self.uncertain,
            "not_lesion": self.not_lesion,
            "lesion_score": None if self.lesion_score is None else round(self.lesion_score, 3),
            "verdict": self.verdict,
            "quality": self.quality,
            "invoke_ms": round(self.invoke_ms, 3),
            "latency_ms": round(self.total_ms, 3),
            "disclaimer": DISCLAIMER,
        }


class Inference(NamedTuple):
    """One run of the model: raw output, invoke time and the lesion gate's distance (None without a gate)."""

    logits: np.ndarray
    invoke_ms: float
    lesion_score: float | None = None


class Classifier:
    """A TFLite classifier and its embedded contract. Thread-safe: calls take turns on one interpreter.

    Args:
        model_path: a ``.tflite`` file written by ``convert`` (the contract is read from it).
        threads: interpreter threads; None lets the runtime choose.
        contract: overrides the embedded contract (for plain ``.tflite`` files).

    Raises:
        FileNotFoundError: no such model file.
        ContractError: not a TFLite classifier, no contract, or contract and model disagree.
    """

    def __init__(
        self, model_path: str | Path, threads: int | None = None, contract: ModelContract | None = None
    ) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"model file {model_path} does not exist")
        self.contract = contract or read_contract(model_path)
        if self.contract.task != "classify":
            raise ContractError(f"{model_path} is a {self.contract.task} model, not a classifier")
        self.model = TFLiteModel(model_path, threads=threads)
        size = self.contract.image_size
        expected_in, got_in = (1, size, size, 3), self.model.input_shape
        if got_in != expected_in:
            raise ContractError(f"{model_path}: contract says input {expected_in}, model takes {got_in}")
        self._lock = threading.Lock()
        n_out = int(self.model.output["shape"][-1])
        if n_out != len(self.contract.labels):
            raise ContractError(f"{model_path}: {len(self.contract.labels)} labels but {n_out} outputs")
        self.gate = LesionGate.from_dict(self.contract.lesion_gate) if self.contract.lesion_gate else None
        if self.gate is not None:
            dims = None if self.model.features_output is None else int(self.model.features_output["shape"][-1])
            reads = self.gate.start + self.gate.dims
            if dims is None or dims < reads:
                raise ContractError(f"{model_path}: the contract's lesion gate reads {reads} features, "
                                    f"the model gives {dims or 'none'}")  # fmt: skip

    @property
    def runtime(self) -> str:
        return self.model.runtime

    def not_a_lesion(self, lesion_score: float | None) -> bool:
        """Whether the lesion gate refuses an image with this distance (never without a gate or a score)."""
        return lesion_score is not None and self.gate is not None and self.gate.refuses(lesion_score)

    def run(self, model_input: np.ndarray) -> Inference:
        """Raw output, inference ms and lesion-gate distance for one preprocessed image (``image_size``
        square, RGB uint8)."""
        with self._lock:
            logits = self.model(model_input)
            features = self.model.features() if self.gate is not None else None
            invoke_ms = self.model.last_invoke_ms
        score = None if features is None else float(self.gate.score(features))
        return Inference(logits, invoke_ms, score)

    def logits(self, model_input: np.ndarray) -> np.ndarray:
        """Raw model output for one preprocessed image."""
        return self.run(model_input)[0]

    def probabilities(self, model_input: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for one preprocessed image."""
        return calibrated_probabilities(self.logits(model_input), self.contract.temperature)

    def classify(self, image: np.ndarray, quality: dict[str, Any] | None = None) -> Prediction:
        """Classify an RGB uint8 HWC image of any size (preprocessing comes from the contract)."""
        start = time.perf_counter()
        out = self.run(preprocess(image, self.contract))
        probs = calibrated_probabilities(out.logits, self.contract.temperature)
        return self.prediction_from(probs, out.invoke_ms, start, quality, out.lesion_score)

    def prediction_from(
        self,
        probs: np.ndarray,
        invoke_ms: float,
        start: float,
        quality: dict[str, Any] | None = None,
        lesion_score: float | None = None,
    ) -> Prediction:
        c = self.contract
        best = int(np.argmax(probs))
        risk = malignancy_risk(probs, c)
        return Prediction(
            label=c.labels[best],
            confidence=float(probs[best]),
            probabilities={name: float(p) for name, p in zip(c.labels, probs)},
            risk=risk,
            flagged=risk is not None and risk >= c.risk_threshold,
            uncertain=is_uncertain(probs, c),
            invoke_ms=invoke_ms,
            total_ms=(time.perf_counter() - start) * 1000.0,
            quality=quality or {},
            risk_threshold=None if risk is None else c.risk_threshold,
            lesion_score=lesion_score,
            not_lesion=self.not_a_lesion(lesion_score),
        )
