"""The one fit loop of every trained model (classifier and segmenter): phases of ``model.fit``, a
validation score after each epoch choosing the best one, a checkpoint every epoch (``train --resume``),
a log row per epoch, one stop handler for SIGTERM and Ctrl-C, and any tf.distribute strategy.

A caller builds its model (inside ``placement.strategy.scope()``) and its data, then hands them to
:func:`fit_phases` with a :class:`Phase` list and a validation function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.run.stopping import StopSignals
from training.best_epoch import BestEpoch
from training.runfolder import RunFolder
from training.runstate import EpochLog, RunState, drop_checkpoint, restore_checkpoint, save_checkpoint

__all__ = ["Fit", "Phase", "TrainingInterrupted", "fit_phases", "phases"]

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 20  # a progress line within an epoch this often


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT arrived; the run folder holds the last finished epoch's checkpoint."""


@dataclass(frozen=True)
class Phase:
    """One fit() of the schedule: how many epochs, which rate, what trains."""

    name: str
    epochs: int
    learning_rate: float
    cosine: bool  # decay from learning_rate to zero over the phase
    backbone_trainable: bool


def phases(head_epochs: int, head_rate: float, epochs: int, rate: float, pretrained: bool) -> list[Phase]:
    """The two-phase schedule: the head on a frozen (pretrained) backbone, then everything, cosine rate."""
    out = []
    if head_epochs and pretrained:
        out.append(Phase("head", head_epochs, head_rate, False, False))
    if epochs:
        out.append(Phase("fine-tune", epochs, rate, True, True))
    return out


@dataclass
class Fit:
    """What :func:`fit_phases` trains and how it is judged."""

    model: Any
    backbone: Any  # frozen during phases with backbone_trainable False
    loss: Any
    batches: Callable[[int], Any]  # seed -> the training batches of an epoch (a tf.data.Dataset)
    images: int  # training images
    validate: Callable[[], dict[str, float]]  # validation scores after an epoch, keyed as ``scores`` says
    scores: tuple[str, ...]  # validate()'s keys, as the log's columns ("val_loss", ...)
    select: str  # the one of them that chooses the best epoch (higher is better)
    select_name: str  # how the log says it, e.g. "balanced accuracy"
    metrics: tuple[str, ...] = ()  # Keras training metrics, e.g. ("accuracy",)
    steps: int | None = None  # steps an epoch; None: one pass over the batches


def fit_phases(fit: Fit, schedule: list[Phase], out: Path, split: dict, state: RunState, placement: Any,
               patience: int, batch_size: int, seed: int) -> BestEpoch:  # fmt: skip
    """Run ``schedule`` on ``fit.model``, validating, choosing the best epoch and writing a checkpoint
    after each epoch (``state`` resumes one); leaves the best epoch's weights in the model.

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT (after the step in flight).
    """
    import keras

    model = fit.model
    resuming = state.epoch > 0 or bool(state.phases_done)
    replicas = placement.replicas
    global_batch = batch_size * replicas
    history = state.history
    scores: dict[str, float] = {}
    stop = StopSignals(doing="finishing the step in flight")  # SIGTERM or SIGINT: stop after the step
    best = BestEpoch(lambda m: scores[fit.select], history, patience, name=fit.select_name, key=fit.select,
                     announce=False)  # fmt: skip
    if resuming:
        best.load_state(state.best, restore_checkpoint(out, model, with_optimizer=False))
        log.info("resuming %s after epoch %d (%s)", out, state.epoch, state.phase or "start")
    train_keys = ("loss", *fit.metrics)
    columns = ("epoch", "phase", *train_keys, *fit.scores, "learning_rate", "seconds", "images_per_s")
    epoch_log = EpochLog(out, columns, resume_after=state.epoch) if placement.is_chief and resuming else None

    def end_epoch(phase: Phase, epoch_in_phase: int, logs: dict, seconds: float, images: int) -> bool:
        """Validate, record, choose the best, log and checkpoint; True when the phase is over."""
        nonlocal epoch_log
        scores.clear()
        scores.update(fit.validate())
        for key in train_keys:
            history.setdefault(key, []).append(float(logs.get(key, np.nan)))
        for key in scores:
            if key != fit.select:  # BestEpoch records the selecting score
                history.setdefault(key, []).append(scores[key])
        history.setdefault("phase", []).append(phase.name)
        state.epoch += 1
        best.end_epoch(model, epoch=state.epoch)
        over = bool(model.stop_training) or epoch_in_phase + 1 >= phase.epochs
        state.phase, state.phase_epochs_done = phase.name, epoch_in_phase + 1
        if over:
            state.phases_done.append(phase.name)
        state.best = best.state()
        row = {
            "epoch": state.epoch,
            "phase": phase.name,
            **{k: float(logs.get(k, np.nan)) for k in train_keys},
            **scores,
            "learning_rate": _current_rate(model),
            "seconds": seconds,
            "images_per_s": images / seconds,
        }
        log.info(
            "epoch %d (%s %d/%d): loss %.3f, validation %s %.3f, %.0f s, %.1f images/s",
            state.epoch, phase.name, epoch_in_phase + 1, phase.epochs, row["loss"], fit.select_name,
            scores[fit.select], seconds, row["images_per_s"],
        )  # fmt: skip
        if placement.is_chief:
            if epoch_log is None:  # the first epoch of a new run: the run folder appears now
                out.mkdir(parents=True, exist_ok=True)
                drop_checkpoint(out)
                RunFolder(out).write_split(split)
                epoch_log = EpochLog(out, columns)
            epoch_log.write(row)
            save_checkpoint(out, state, model, best.best_weights)
        return over

    def run_phase(phase: Phase) -> None:
        start = state.phase_epochs_done if state.phase == phase.name else 0
        fit.backbone.trainable = phase.backbone_trainable
        if phase.name == "fine-tune" and not start:
            best.reset_patience(phase.epochs)  # the first half does not count: the cosine rate is still high
        log.info("phase %s: %d images, epochs %d-%d", phase.name, fit.images, state.epoch + 1,
                 state.epoch + phase.epochs - start)  # fmt: skip
        steps = fit.steps or int(np.ceil(fit.images / global_batch))
        rate = phase.learning_rate * replicas
        batches = fit.batches(seed + state.epoch)
        with placement.strategy.scope():
            schedule = keras.optimizers.schedules.CosineDecay(rate, phase.epochs * steps) if phase.cosine else rate
            model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4), loss=fit.loss,
                          metrics=list(fit.metrics))  # fmt: skip
            if placement.multi_worker:
                x, t = next(iter(batches.take(1)))[:2]
                _fit_across_workers(model, (np.asarray(x)[:1].astype("float32"), np.asarray(t)[:1]))
            if start:
                restore_checkpoint(out, model, with_optimizer=True)
        stop.check()
        callback = _epoch_callback(phase, steps, global_batch, end_epoch, stop)
        model.fit(batches, steps_per_epoch=fit.steps, epochs=phase.epochs, initial_epoch=start, callbacks=[callback],
                  shuffle=False, verbose=0)  # fmt: skip
        stop.check()

    try:
        with stop:
            for phase in schedule:
                if phase.name not in state.phases_done:
                    run_phase(phase)
    except KeyboardInterrupt:
        if not state.epoch:
            raise TrainingInterrupted("interrupted before the first epoch ended: nothing was kept") from None
        hint = f"continue with `train --resume {out}`"
        raise TrainingInterrupted(f"interrupted after epoch {state.epoch}: {hint}") from None
    best.restore(model)
    return best


def _fit_across_workers(model, batch: tuple[np.ndarray, np.ndarray]) -> None:
    """Let ``model.fit`` run under MultiWorkerMirroredStrategy, which Keras 3 breaks twice
    (keras-team/keras#20585): fit() reduces its first (images, targets) batch across workers to
    build the loss and metrics, and averages each step's scalar metrics over an axis they lack.
    Build on a plain batch instead and give the metrics that axis."""
    import tensorflow as tf

    model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    step = model.train_step
    model.train_step = lambda data: {k: tf.reshape(v, [1]) for k, v in step(data).items()}


def _current_rate(model) -> float:
    optimizer = model.optimizer
    rate = optimizer.learning_rate
    return float(np.asarray(rate(optimizer.iterations) if callable(rate) else rate))


def _epoch_callback(phase: Phase, steps: int, batch: int, end_epoch, stop: StopSignals):
    """A Keras callback: progress within an epoch (a line every PROGRESS_SECONDS), then ``end_epoch``;
    on a stop request it ends training after the current step, and a partial epoch is not recorded."""
    import keras

    class _Callback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch, self.started, self.shown, self.steps_done = epoch, time.monotonic(), time.monotonic(), 0

        def on_train_batch_end(self, batch_index: int, logs: dict | None = None) -> None:
            self.steps_done = batch_index + 1
            if stop.requested:
                self.model.stop_training = True
                return
            now = time.monotonic()
            if now - self.shown >= PROGRESS_SECONDS:
                self.shown = now
                rate = self.steps_done * batch / (now - self.started)
                left = (steps - self.steps_done) * batch / rate
                log.info("  %s epoch %d/%d: step %d/%d, %.1f images/s, %.0f s left in the epoch",
                         phase.name, self.epoch + 1, phase.epochs, self.steps_done, steps, rate, left)  # fmt: skip

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if stop.requested and self.steps_done < steps:
                return
            seconds = time.monotonic() - self.started
            if end_epoch(phase, epoch, logs or {}, seconds, self.steps_done * batch) or stop.requested:
                self.model.stop_training = True

    return _Callback()
