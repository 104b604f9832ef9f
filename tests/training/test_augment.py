"""The training augmenter: white-balance jitter scales each colour channel, within its bound, and only when asked."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.train import augmenter  # noqa: E402


def _channel_ratios(white_balance: float) -> np.ndarray:
    grey = np.full((64, 8, 8, 3), 120.0, np.float32)  # flat: flips, rotation and contrast leave it flat
    out = np.asarray(augmenter(seed=0, white_balance=white_balance)(grey, training=True))
    pixel = out[:, 4, 4, :]  # brightness adds the same to every channel, the gain then scales each
    return pixel / pixel[:, 1:2]


def test_white_balance_scales_channels_apart_within_bound():
    ratios = _channel_ratios(0.2)
    assert ratios.std(axis=0)[[0, 2]].min() > 0.05  # red and blue move independently of green
    assert ratios.max() <= 1.2**2 + 1e-4 and ratios.min() >= 1.2**-2 - 1e-4  # two gains of at most x/÷ 1.2


def test_no_white_balance_keeps_channels_together():
    np.testing.assert_allclose(_channel_ratios(0.0), 1.0, atol=1e-5)
