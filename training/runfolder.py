"""A ``train`` run folder: the one place that knows its files, writes them and reads them back.

``train`` writes model.keras, contract.json, split.json (the images of each part) and metrics.json (with
the configuration it ran with); ``train --resume``, ``convert``, ``recalibrate``'s readers and ``bench/``
read runs only through :class:`RunFolder`. Light to import: no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.model.contract import ModelContract, load_contract, save_contract
from training.config import FitConfig, TrainConfig, config_from

__all__ = ["RunFolder"]


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def model_file(self) -> Path:
        return self.path / "model.keras"

    @property
    def contract_file(self) -> Path:
        return self.path / "contract.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def split_file(self) -> Path:
        return self.path / "split.json"

    def is_finished(self) -> bool:
        """A trained model and its contract are there."""
        return self.model_file.is_file() and self.contract_file.is_file()

    def require(self) -> RunFolder:
        """This folder, when it holds a trained model and its contract.

        Raises:
            FileNotFoundError: it does not (one sentence).
        """
        if not self.is_finished():
            raise FileNotFoundError(f"{self.path} is not a train run folder (no model.keras and contract.json)")
        return self

    # --- reading back
    def contract(self) -> ModelContract:
        return load_contract(self.contract_file)

    def metrics(self) -> dict[str, Any]:
        """metrics.json, or {} when the run has not finished."""
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else {}

    def saved_config(self) -> dict[str, Any]:
        """The configuration the run recorded, as saved (JSON values), or {}."""
        return self.metrics().get("config", {})

    def config(self, cls: type[FitConfig] = TrainConfig) -> Any:
        """The configuration the run was trained with.

        Raises:
            FileNotFoundError: the run recorded none (it has not finished).
        """
        saved = self.saved_config()
        if not saved:
            raise FileNotFoundError(f"{self.metrics_file} records no configuration: has the run finished?")
        return config_from(cls, saved)

    def collections(self) -> list[Path]:
        """The DATA collections the run trained on, in order ([] when unknown)."""
        saved = self.saved_config()
        return [Path(p) for p in ([saved["data"]] if saved.get("data") else []) + list(saved.get("more_data", ()))]

    def trained_on(self, data: str | Path) -> bool:
        """Whether ``data`` is the run's (first) DATA collection."""
        first = self.collections()[:1]
        return bool(first) and first[0].resolve() == Path(data).resolve()

    def split(self) -> dict[str, list[str]] | None:
        """The image paths of each part ("train" when --train-on narrowed it, "validation", "test"), or None."""
        return json.loads(self.split_file.read_text()) if self.split_file.is_file() else None

    def test_ids(self) -> set[str]:
        """The ids (file names without suffix: ISIC or PH2 ids) of the run's test images; empty without a test part."""
        return {Path(p).stem for p in (self.split() or {}).get("test", [])}

    # --- writing
    def write_split(self, split: dict[str, list[str]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.split_file.write_text(json.dumps(split))

    def write_model(self, model: Any, contract: ModelContract, split: dict[str, list[str]]) -> None:
        """The trained Keras model, its contract and its split."""
        self.path.mkdir(parents=True, exist_ok=True)
        model.save(self.model_file)
        save_contract(contract, self.contract_file)
        self.write_split(split)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.metrics_file.write_text(json.dumps(metrics, indent=2))
