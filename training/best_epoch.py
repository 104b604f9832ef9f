"""Early stopping on a validation score, keeping the best epoch's weights (classifier and segmenter training)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["BestEpoch"]

log = logging.getLogger(__name__)

GRACE_SHARE = 0.5  # of a decaying-rate phase's epochs that do not count towards patience


class BestEpoch:
    """Scores the model on validation after every epoch, across fit() calls; early stopping, best weights.

    ``score_fn(model)`` returns the validation score (higher is better). Each score is appended to
    ``history[key]`` and logged as "epoch N: validation <name> S". After ``patience`` epochs in a row
    without a strictly higher score the callback sets ``model.stop_training`` (the first
    ``GRACE_SHARE`` of a phase given to ``reset_patience`` do not count); ``restore`` puts back
    the weights of the best epoch. Epochs are numbered from 1 and keep counting across phases.
    """

    def __init__(
        self,
        score_fn: Callable[[Any], float],
        history: dict[str, list[float]],
        patience: int,
        name: str,
        key: str,
        announce: bool = True,
    ) -> None:
        self.score_fn, self.history, self.patience, self.name, self.key = score_fn, history, patience, name, key
        self.announce = announce  # log each epoch's score (off when the caller logs a line per epoch itself)
        self.best, self.best_weights, self.best_epoch, self.epoch, self.wait = -1.0, None, -1, 0, 0
        self.grace_until = 0  # epochs up to and including this one do not count towards patience

    def reset_patience(self, phase_epochs: int = 0) -> None:
        """Start counting epochs without gain afresh (at the start of a new training phase).

        Args:
            phase_epochs: the epochs of a phase under a decaying learning rate; its first
                ``GRACE_SHARE`` do not count towards patience. The early, high-rate epochs are
                noisy: a lucky one would otherwise stop the run before the rate has come down
                (docs/BENCHMARKS.md).
        """
        self.wait = 0
        self.grace_until = self.epoch + int(phase_epochs * GRACE_SHARE)

    def end_epoch(self, model, epoch: int | None = None) -> None:
        """Score ``model`` after an epoch: record, keep its weights if best, stop it when patience runs out.

        ``epoch`` numbers it when the caller counts epochs itself (e.g. with unscored phases before).
        """
        score = float(self.score_fn(model))
        self.history.setdefault(self.key, []).append(score)
        self.epoch = self.epoch + 1 if epoch is None else epoch
        if self.announce:
            log.info("epoch %d: validation %s %.3f", self.epoch, self.name, score)
        if score > self.best:
            self.best, self.best_epoch, self.wait = score, self.epoch, 0
            self.best_weights = model.get_weights()
        elif self.epoch > self.grace_until:
            self.wait += 1
            if self.wait >= self.patience:
                log.info("early stop: no gain for %d epochs", self.patience)
                model.stop_training = True

    def state(self) -> dict:
        """What a checkpoint needs to carry on where this left off (all but the best weights)."""
        keys = ("best", "best_epoch", "epoch", "wait", "grace_until")
        return {k: getattr(self, k) for k in keys}

    def load_state(self, state: dict, best_weights: list | None) -> None:
        for key, value in state.items():
            setattr(self, key, value)
        self.best_weights = best_weights

    def callback(self):
        """A Keras callback that calls ``end_epoch`` with the model being fitted."""
        import keras

        outer = self

        class _Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                outer.end_epoch(self.model)

        return _Callback()

    def restore(self, model) -> None:
        """Give ``model`` the weights of the best epoch (if any epoch was scored)."""
        if self.best_weights is not None:
            model.set_weights(self.best_weights)
            log.info("kept the weights of epoch %d (%s %.3f)", self.best_epoch, self.name, self.best)
