from __future__ import annotations

import numpy as np
import pytest

from edge.run.postprocess import Smoother, SmoothingConfig


def test_moving_average_follows_the_formula():
    s = Smoother(SmoothingConfig(alpha=0.25))
    first = s.update(np.array([0.9, 0.1]), timestamp=0.0)
    np.testing.assert_allclose(first, [0.9, 0.1])
    second = s.update(np.array([0.1, 0.9]), timestamp=0.1)
    np.testing.assert_allclose(second, [0.25 * 0.1 + 0.75 * 0.9, 0.25 * 0.9 + 0.75 * 0.1])
    assert s.count == 2
    assert second.sum() == pytest.approx(1.0)


def test_a_single_odd_frame_does_not_flip_the_reading():
    s = Smoother()
    for t in range(10):
        s.update(np.array([0.8, 0.2]), timestamp=t * 0.1)
    blip = s.update(np.array([0.1, 0.9]), timestamp=1.0)
    assert blip.argmax() == 0
    for t in range(6):
        settled = s.update(np.array([0.1, 0.9]), timestamp=1.1 + t * 0.1)
    assert settled.argmax() == 1  # a lasting change wins within a few frames


def test_reset_and_time_gaps_restart_the_average():
    s = Smoother(SmoothingConfig(alpha=0.5, max_gap_s=1.0))
    s.update(np.array([1.0, 0.0]), timestamp=0.0)
    s.reset("test")
    np.testing.assert_allclose(s.update(np.array([0.0, 1.0]), timestamp=0.1), [0.0, 1.0])
    np.testing.assert_allclose(s.update(np.array([1.0, 0.0]), timestamp=5.0), [1.0, 0.0])  # 4.9 s gap
    assert s.count == 1


def test_a_change_in_class_count_restarts():
    s = Smoother()
    s.update(np.array([0.5, 0.5]))
    np.testing.assert_allclose(s.update(np.array([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5])


def test_alpha_one_is_no_smoothing_and_bad_settings_raise():
    s = Smoother(SmoothingConfig(alpha=1.0))
    s.update(np.array([1.0, 0.0]))
    np.testing.assert_allclose(s.update(np.array([0.3, 0.7])), [0.3, 0.7])
    with pytest.raises(ValueError, match="alpha"):
        SmoothingConfig(alpha=0.0)
    with pytest.raises(ValueError, match="max_gap_s"):
        SmoothingConfig(max_gap_s=0)
    with pytest.raises(ValueError, match="1-D"):
        Smoother().update(np.ones((2, 2)))
