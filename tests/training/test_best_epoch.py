"""BestEpoch: a scripted sequence of validation scores against a stub model and a tiny Keras model."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from training.best_epoch import BestEpoch


class _StubModel:
    """get_weights/set_weights/stop_training like a Keras model; 'training' an epoch sets its weights to the epoch."""

    def __init__(self) -> None:
        self.weights = [np.zeros(3), np.zeros(1)]
        self.stop_training = False

    def train_epoch(self, epoch: int) -> None:
        self.weights = [np.full(3, float(epoch)), np.full(1, -float(epoch))]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [w.copy() for w in weights]


def _scripted(scores: list[float]):
    it = iter(scores)
    return lambda model: next(it)


def _run(best: BestEpoch, model: _StubModel, first: int, n: int, step) -> int:
    """Like model.fit: train and score up to n epochs, stopping when the tracker says so; returns epochs run."""
    model.stop_training = False
    for i in range(n):
        model.train_epoch(first + i)
        step(model)
        if model.stop_training:
            return i + 1
    return n


def test_keeps_best_stops_after_patience_and_restores(caplog):
    history: dict[str, list[float]] = {"loss": [1.0]}
    best = BestEpoch(_scripted([0.2, 0.5, 0.4, 0.5, 0.3, 0.9]), history, 3, name="mean Jaccard", key="val_mean_jaccard")
    model = _StubModel()
    with caplog.at_level(logging.INFO, logger="training.best_epoch"):
        ran = _run(best, model, 1, 6, best.end_epoch)
        best.restore(model)
    # epoch 2 is best; 3, 4 (a tie is no gain) and 5 without gain -> stop after epoch 5
    assert ran == 5 and model.stop_training
    assert history == {"loss": [1.0], "val_mean_jaccard": [0.2, 0.5, 0.4, 0.5, 0.3]}
    assert (best.best_epoch, best.best, best.epoch, best.wait) == (2, 0.5, 5, 3)
    np.testing.assert_array_equal(model.weights[0], np.full(3, 2.0))
    np.testing.assert_array_equal(model.weights[1], np.full(1, -2.0))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "epoch 1: validation mean Jaccard 0.200"
    assert "early stop: no gain for 3 epochs" in messages
    assert messages[-1] == "kept the weights of epoch 2 (mean Jaccard 0.500)"


def test_grace_epochs_do_not_count_towards_patience():
    # a lucky early epoch (0.7) and no gain after it: patience 2 alone would stop after epoch 3
    scores = [0.5, 0.7, 0.4, 0.5, 0.6, 0.6, 0.65, 0.6, 0.6]
    best = BestEpoch(_scripted(scores), {}, 2, name="balanced accuracy", key="val_balanced_accuracy")
    best.reset_patience(phase_epochs=10)  # its first half, 5 epochs, does not count
    model = _StubModel()
    assert _run(best, model, 1, 9, best.end_epoch) == 7  # epochs 1-5 do not count; 6 and 7 are without gain
    assert (best.best_epoch, best.best) == (2, 0.7)


def test_epochs_count_across_phases_and_patience_resets():
    history: dict[str, list[float]] = {}
    scores = [0.3, 0.6, 0.5, 0.4, 0.7, 0.6, 0.6]
    best = BestEpoch(_scripted(scores), history, 2, name="balanced accuracy", key="val_balanced_accuracy")
    model = _StubModel()
    assert _run(best, model, 1, 3, best.end_epoch) == 3  # 0.3, 0.6, 0.5: one epoch without gain, no stop
    assert best.wait == 1 and not model.stop_training
    best.reset_patience()
    # phase 2 is epochs 4..: 0.4 (wait 1), 0.7 (best, epoch 5), 0.6, 0.6 -> stop after epoch 7
    assert _run(best, model, 4, 10, best.end_epoch) == 4
    assert history["val_balanced_accuracy"] == scores
    assert (best.best_epoch, best.best, best.epoch) == (5, 0.7, 7)
    best.restore(model)
    np.testing.assert_array_equal(model.weights[0], np.full(3, 5.0))


def test_restore_without_a_scored_epoch_leaves_the_model_alone():
    best = BestEpoch(_scripted([]), {}, 3, name="mean Jaccard", key="val_mean_jaccard")
    model = _StubModel()
    model.train_epoch(7)
    best.restore(model)
    assert best.best_epoch == -1
    np.testing.assert_array_equal(model.weights[0], np.full(3, 7.0))


def test_keras_callback_drives_the_tracker():
    pytest.importorskip("keras")
    history: dict[str, list[float]] = {}
    best = BestEpoch(_scripted([0.1, 0.4, 0.2, 0.3]), history, 2, name="mean Jaccard", key="val_mean_jaccard")
    model = _StubModel()
    callback = best.callback()
    callback.set_model(model)

    def step(m):
        callback.on_epoch_end(best.epoch, {})

    assert _run(best, model, 1, 10, step) == 4
    best.restore(model)
    assert best.best_epoch == 2
    np.testing.assert_array_equal(model.weights[0], np.full(3, 2.0))


def test_tiny_keras_model_fit_stops_early_and_restores_best_weights():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    y = x @ np.array([[1.0], [-2.0]], "float32")
    seen: list[list[np.ndarray]] = []
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.9])

    def score(m) -> float:
        seen.append(m.get_weights())
        return next(scores)

    history: dict[str, list[float]] = {}
    best = BestEpoch(score, history, 2, name="balanced accuracy", key="val_balanced_accuracy")
    h = model.fit(x, y, epochs=20, batch_size=8, callbacks=[best.callback()], verbose=0)
    assert len(h.history["loss"]) == 4  # stopped after 2 epochs past the best (epoch 2)
    assert history["val_balanced_accuracy"] == [0.1, 0.5, 0.2, 0.3]
    assert not all(np.allclose(a, b) for a, b in zip(model.get_weights(), seen[1]))
    best.restore(model)
    for restored, kept in zip(model.get_weights(), seen[1]):
        np.testing.assert_array_equal(restored, kept)
