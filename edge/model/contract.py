"""The model contract: everything a consumer needs to feed a model and read its output.

Training fills it, ``convert`` embeds it in the ``.tflite`` file, the edge runner reads it back.
It is the only object passed from training to convert to edge; nothing downstream repeats its
constants. Importable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "COLOR_CONSTANCY",
    "PREPROCESSING_FIELDS",
    "SCHEMA_VERSION",
    "ContractError",
    "ModelContract",
    "DIAGNOSIS_NAMES",
    "MALIGNANT_DIAGNOSES",
    "readable_label",
    "load_contract",
    "save_contract",
]

SCHEMA_VERSION = 1
COLOR_CONSTANCY = ("none", "shades_of_gray")
# What edge.image.preprocess reads: two contracts equal in these turn one image into the same array.
PREPROCESSING_FIELDS = ("image_size", "crop_fraction", "interpolation", "color_constancy", "color_order")

# Diagnosis codes (HAM10000, ISIC 2018/2019, PH2's nevus grades) to the ISIC 9-class names: how
# training maps another collection's labels, and what a person reads next to a code.
DIAGNOSIS_NAMES = {
    "akiec": "actinic keratosis",
    "ak": "actinic keratosis",
    "bcc": "basal cell carcinoma",
    "bkl": "pigmented benign keratosis",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "nevus",
    "common_nevus": "nevus",
    "atypical_nevus": "nevus",
    "scc": "squamous cell carcinoma",
    "vasc": "vascular lesion",
    "seborrheic keratosis": "pigmented benign keratosis",  # ISIC 2019 counts both as BKL
}


def readable_label(label: str) -> str:
    """The name a person reads for a class label: "melanoma" for "MEL"; names stay as they are."""
    return label if " " in label else DIAGNOSIS_NAMES.get(label.lower(), label)


# Diagnoses counted as malignant, by every spelling the supported datasets use.
MALIGNANT_DIAGNOSES = frozenset(
    {
        "mel", "melanoma",
        "bcc", "basal cell carcinoma", "basal_cell_carcinoma",
        "scc", "squamous cell carcinoma", "squamous_cell_carcinoma",
        "akiec", "ak", "actinic keratosis", "actinic_keratosis",
        "malignant",
    }
)  # fmt: skip


class ContractError(ValueError):
    """A model contract is missing, malformed or does not fit the model."""


@dataclass(frozen=True)
class ModelContract:
    """How to feed a model and how to read what it returns.

    Input format: RGB, HWC, uint8 0-255, ``image_size`` x ``image_size`` after the shared
    ``edge.image.preprocess.preprocess`` (centre square crop of ``crop_fraction`` of the short side,
    area resize, then ``color_constancy``). Rescaling to the network's range happens inside the model graph.
    """

    # --- identity
    task: str  # "classify" or "segment"
    labels: tuple[str, ...]
    arch: str = "mobilenet_v3_small"
    version: str = "0.1.0"
    schema_version: int = SCHEMA_VERSION
    # --- input
    image_size: int = 224
    color_order: str = "RGB"
    crop_fraction: float = 1.0
    interpolation: str = "area"
    color_constancy: str = "none"  # or "shades_of_gray", applied after the resize
    # --- output reading
    malignant_labels: tuple[str, ...] = ()
    temperature: float = 1.0  # calibrated softmax temperature (logits / T)
    risk_threshold: float = 0.5  # malignancy risk at or above this is flagged "see a clinician"
    uncertain_below: float = 0.4  # top-1 confidence below this reads "uncertain"
    uncertain_margin: float = 0.1  # so does a top-1 less than this ahead of the runner-up
    # "not a skin lesion": edge.model.lesion_gate.LesionGate.to_dict() on the file's feature output; {} = none
    lesion_gate: dict[str, Any] = field(default_factory=dict)
    # --- provenance
    data_fingerprint: str = ""
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    # --- integrity: sha256 of the .tflite file with this field zeroed, set by embed_contract
    model_sha256: str = ""

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ContractError(
                f"contract schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})"
            )
        if self.task not in ("classify", "segment"):
            raise ContractError(f"contract task must be 'classify' or 'segment', got {self.task!r}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "malignant_labels", tuple(self.malignant_labels))
        if self.task == "classify" and len(self.labels) < 2:
            raise ContractError(f"a classifier needs at least 2 labels, got {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ContractError(f"contract labels repeat: {list(self.labels)}")
        unknown = set(self.malignant_labels) - set(self.labels)
        if unknown:
            raise ContractError(f"malignant_labels {sorted(unknown)} are not among labels {list(self.labels)}")
        if not 32 <= self.image_size <= 1024:
            raise ContractError(f"image_size must be within 32..1024, got {self.image_size}")
        if self.color_order not in ("RGB",):
            raise ContractError(f"color_order must be 'RGB', got {self.color_order!r}")
        if self.color_constancy not in COLOR_CONSTANCY:
            raise ContractError(f"color_constancy must be one of {list(COLOR_CONSTANCY)}, got {self.color_constancy!r}")
        if not 0.1 <= self.crop_fraction <= 1.0:
            raise ContractError(f"crop_fraction must be within 0.1..1.0, got {self.crop_fraction}")
        if self.temperature <= 0:
            raise ContractError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.uncertain_margin < 1.0:
            raise ContractError(f"uncertain_margin must be within 0..1, got {self.uncertain_margin}")
        if self.lesion_gate:
            from edge.model.lesion_gate import LesionGate

            try:
                LesionGate.from_dict(self.lesion_gate)
            except ValueError as exc:
                raise ContractError(str(exc)) from None

    @property
    def preprocessing(self) -> tuple[Any, ...]:
        """The values of PREPROCESSING_FIELDS: equal for two contracts that see an image as the same array."""
        return tuple(getattr(self, f) for f in PREPROCESSING_FIELDS)

    @property
    def malignant_indices(self) -> tuple[int, ...]:
        return tuple(self.labels.index(name) for name in self.malignant_labels)

    def replace(self, **changes: Any) -> ModelContract:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["labels"] = list(self.labels)
        out["malignant_labels"] = list(self.malignant_labels)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def summary(self) -> dict[str, Any]:
        """:meth:`to_dict` with the lesion gate's arrays named by size instead of spelled out (for people)."""
        out = self.to_dict()
        if self.lesion_gate:
            out["lesion_gate"] = {k: (f"<{len(v)} base64 characters>" if k in ("mean", "components", "variances")
                                      else v) for k, v in self.lesion_gate.items()}  # fmt: skip
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelContract:
        if not isinstance(data, dict):
            raise ContractError(f"a contract must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ContractError(f"unknown contract fields {unknown}; known: {sorted(known)}")
        missing = [name for name in ("task", "labels") if name not in data]
        if missing:
            raise ContractError(f"contract lacks required fields {missing}")
        try:
            return cls(**data)
        except TypeError as exc:  # wrong value types
            raise ContractError(f"malformed contract: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelContract:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractError(f"contract is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def save_contract(contract: ModelContract, path: str | Path) -> Path:
    """Write ``contract`` as JSON to ``path`` and return the path."""
    path = Path(path)
    path.write_text(contract.to_json() + "\n")
    return path


def load_contract(path: str | Path) -> ModelContract:
    """Read a contract from a ``.json`` file, a training run folder or a ``.tflite`` model."""
    path = Path(path)
    if path.is_dir():
        path = path / "contract.json"
    if not path.exists():
        raise FileNotFoundError(f"no model contract at {path}")
    if path.suffix == ".tflite":
        from edge.model.modelfile import read_contract

        return read_contract(path)
    return ModelContract.from_json(path.read_bytes())
