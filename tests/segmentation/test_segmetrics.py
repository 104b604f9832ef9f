"""ISIC 2018 Task 1 metrics on masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from training.segment.metrics import dice, jaccard, mask_agreement, segmentation_metrics


def _box(x0: int, x1: int, size: int = 10) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[:, x0:x1] = 1
    return m


def test_known_jaccard_and_dice():
    a, b = _box(0, 4), _box(2, 6)  # 40 and 40 pixels, 20 shared, 60 in the union
    assert jaccard(a, b) == pytest.approx(1 / 3)
    assert dice(a, b) == pytest.approx(0.5)
    assert jaccard(a, a) == 1.0 and dice(a, a) == 1.0
    assert jaccard(a, _box(6, 10)) == 0.0 and dice(a, _box(6, 10)) == 0.0
    empty = np.zeros((10, 10))
    assert jaccard(empty, empty) == 1.0 and dice(empty, empty) == 1.0  # nothing to find, nothing found
    assert jaccard(a * 255, b.astype(bool)) == pytest.approx(1 / 3)  # any nonzero value is lesion


def test_thresholded_jaccard_zeroes_images_below_0_65():
    truth = _box(0, 10)
    preds = [_box(0, 7), _box(0, 6), _box(0, 10)]  # Jaccard 0.7, 0.6, 1.0
    m = segmentation_metrics(preds, [truth] * 3)
    assert m["n"] == 3
    assert m["mean_jaccard"] == pytest.approx((0.7 + 0.6 + 1.0) / 3)
    assert m["thresholded_jaccard"] == pytest.approx((0.7 + 0.0 + 1.0) / 3)
    assert m["mean_dice"] == pytest.approx((2 * 0.7 / 1.7 + 2 * 0.6 / 1.6 + 1.0) / 3)
    assert m["below_threshold"] == 1 and m["min_jaccard"] == pytest.approx(0.6)
    assert m["per_image_jaccard"] == [0.7, 0.6, 1.0]
    exactly = segmentation_metrics([_box(0, 13, 20)[:10]], [_box(0, 20, 20)[:10]])  # 13/20 = 0.65: kept
    assert exactly["thresholded_jaccard"] == pytest.approx(0.65)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        jaccard(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="2 predictions for 1"):
        segmentation_metrics([_box(0, 1)] * 2, [_box(0, 1)])
    with pytest.raises(ValueError, match="no masks"):
        segmentation_metrics([], [])


def test_mask_agreement():
    got = mask_agreement([_box(0, 4), _box(0, 10)], [_box(2, 6), _box(0, 10)])
    assert got == {"mean_iou": pytest.approx((1 / 3 + 1) / 2), "min_iou": pytest.approx(1 / 3), "n": 2}
