"""Temporal smoothing of class probabilities over consecutive camera (or video) frames.

A hand-held camera wobbles and single frames flicker between classes; an exponential moving average
of the calibrated probabilities steadies the reading. The average restarts when the quality gate
fails (the user moved away or the frame is unusable), when frames stop arriving for a while, or
when the model changes. "Uncertain" is decided afterwards, on the smoothed probabilities, by the
contract's ``uncertain_below`` (see :class:`edge.model.classifier.Prediction`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

__all__ = ["SmoothingConfig", "Smoother"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmoothingConfig:
    """How much history the smoothed probabilities carry.

    Attributes:
        alpha: weight of the newest frame, 0 < alpha <= 1 (1 = no smoothing). 0.35 settles to 90%
            of a sudden change within 6 frames, under half a second at 15 fps.
        max_gap_s: frames further apart than this (seconds) restart the average.
    """

    alpha: float = 0.35
    max_gap_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be within (0, 1], got {self.alpha}")
        if self.max_gap_s <= 0:
            raise ValueError(f"max_gap_s must be positive, got {self.max_gap_s}")


class Smoother:
    """Exponential moving average of probability vectors, restarted by :meth:`reset`.

    >>> s = Smoother(SmoothingConfig(alpha=0.5))
    >>> s.update(np.array([1.0, 0.0]), timestamp=0.0).tolist()
    [1.0, 0.0]
    >>> s.update(np.array([0.0, 1.0]), timestamp=0.1).tolist()
    [0.5, 0.5]
    """

    def __init__(self, config: SmoothingConfig | None = None) -> None:
        self.config = config or SmoothingConfig()
        self._state: np.ndarray | None = None
        self._last_time: float | None = None
        self.count = 0  # frames in the current average

    def reset(self, reason: str = "") -> None:
        """Forget the history (the next update starts afresh)."""
        if self._state is not None and reason:
            log.debug("smoothing restarts: %s", reason)
        self._state = None
        self._last_time = None
        self.count = 0

    def update(self, probabilities: np.ndarray, timestamp: float | None = None) -> np.ndarray:
        """Fold in one frame's probabilities (summing to 1) and return the smoothed vector.

        Args:
            probabilities: 1-D class probabilities of the newest frame.
            timestamp: the frame's time in seconds; a gap over ``max_gap_s`` restarts the average.
        """
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 1:
            raise ValueError(f"expected a 1-D probability vector, got shape {p.shape}")
        if self._state is not None and self._state.shape != p.shape:
            self.reset("the number of classes changed")
        if (
            timestamp is not None
            and self._last_time is not None
            and abs(timestamp - self._last_time) > self.config.max_gap_s
        ):
            self.reset(f"{timestamp - self._last_time:.1f} s since the last frame")
        if self._state is None:
            self._state = p.copy()
        else:
            a = self.config.alpha
            self._state = a * p + (1.0 - a) * self._state
            self._state /= self._state.sum()
        self._last_time = timestamp
        self.count += 1
        return self._state.copy()
