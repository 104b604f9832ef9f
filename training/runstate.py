"""What a run folder keeps while training: a checkpoint every epoch (to resume) and its logs.

``checkpoint/`` holds the model's and the optimizer's variables, the best epoch's weights and
``state.json`` (the configuration, the finished phases, the epochs done in the current one, the
history and the early-stopping state). A new checkpoint is written beside the old one and swapped in
with two renames, so an interruption at any moment leaves one whole checkpoint. ``log.csv`` gets a
row and ``logs/`` (TensorBoard) a point per epoch.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EpochLog",
    "RunState",
    "drop_checkpoint",
    "load_state",
    "restore_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


@dataclass
class RunState:
    """Where a run is: the JSON half of a checkpoint."""

    config: dict[str, Any]
    phases_done: list[str] = field(default_factory=list)
    phase: str = ""
    phase_epochs_done: int = 0
    epoch: int = 0  # epochs finished over all phases
    history: dict[str, list[float]] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)  # BestEpoch.state()
    split_digest: str = ""


def load_state(run: Path) -> RunState | None:
    """The state of ``run``'s checkpoint, or None when it has none."""
    folder = _checkpoint_folder(run)
    if folder is None:
        return None
    return RunState(**json.loads((folder / "state.json").read_text()))


def _checkpoint_folder(run: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):  # .old: the swap was cut between its two renames
        if (run / name / "state.json").is_file():
            return run / name
    return None


def save_checkpoint(run: Path, state: RunState, model, best_weights: list[np.ndarray] | None) -> None:
    """Write the model, its optimizer, the best weights and ``state`` as the run's checkpoint."""
    new, current, old = run / f"{CHECKPOINT}.new", run / CHECKPOINT, run / f"{CHECKPOINT}.old"
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    np.savez(new / "model.npz", *model.get_weights())
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and optimizer.built:
        np.savez(new / "optimizer.npz", *[np.asarray(v) for v in optimizer.variables])
    if best_weights is not None:
        np.savez(new / "best.npz", *best_weights)
    (new / "state.json").write_text(json.dumps(state.__dict__))
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def _arrays(path: Path) -> list[np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def restore_checkpoint(run: Path, model, with_optimizer: bool) -> list[np.ndarray] | None:
    """Give ``model`` (and, when resuming inside a phase, its compiled optimizer) the checkpoint's
    variables; returns the best epoch's weights, if any."""
    folder = _checkpoint_folder(run)
    assert folder is not None, f"{run} has no checkpoint"
    model.set_weights(_arrays(folder / "model.npz"))
    saved = _arrays(folder / "optimizer.npz")
    if with_optimizer and saved is not None:
        model.optimizer.build(model.trainable_variables)
        if len(saved) != len(model.optimizer.variables):
            raise ValueError(
                f"the checkpoint's optimizer has {len(saved)} variables, this one {len(model.optimizer.variables)}"
            )
        for variable, value in zip(model.optimizer.variables, saved):
            variable.assign(value)
    return _arrays(folder / "best.npz")


def drop_checkpoint(run: Path) -> None:
    """Remove the checkpoint of a finished run (the run folder holds the model now)."""
    for name in (CHECKPOINT, f"{CHECKPOINT}.new", f"{CHECKPOINT}.old"):
        shutil.rmtree(run / name, ignore_errors=True)


class EpochLog:
    """A CSV row (``columns``) and TensorBoard points per epoch, numbered over all phases as the log says them."""

    def __init__(self, run: Path, columns: tuple[str, ...], resume_after: int = 0) -> None:
        import tensorflow as tf

        self.csv, self.columns = run / "log.csv", columns
        rows = []
        if resume_after and self.csv.is_file():  # drop rows of epochs the checkpoint does not hold
            with self.csv.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= resume_after]
        with self.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.writer = tf.summary.create_file_writer(str(run / "logs"))

    def write(self, row: dict[str, Any]) -> None:
        import tensorflow as tf

        with self.csv.open("a", newline="") as fh:
            csv.DictWriter(fh, self.columns).writerow({k: _fmt(row.get(k)) for k in self.columns})
        with self.writer.as_default(step=int(row["epoch"])):
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    tf.summary.scalar(key, value)
        self.writer.flush()


def _fmt(value: Any) -> Any:
    return f"{value:.5g}" if isinstance(value, float) else ("" if value is None else value)
