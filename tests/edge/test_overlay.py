from __future__ import annotations

import time

import numpy as np
import pytest

from edge.image.overlay import draw_overlay
from edge.model.classifier import Prediction

GREEN_RGB, ORANGE_RGB, RED_RGB = (60, 200, 80), (255, 160, 0), (230, 40, 40)


def _prediction(risk=0.7, flagged=True, retake=False, uncertain=False):
    probs = {"nevus": 0.2, "melanoma": 0.7, "keratosis": 0.1}
    quality = {"retake": retake, "issues": ["blurry"] if retake else []}
    return Prediction("melanoma", 0.7, probs, risk, flagged, uncertain, 1.0, 2.0, quality)


def _count(image, colour, box=None):
    region = image if box is None else image[box[1] : box[3], box[0] : box[2]]
    return int(np.all(region == np.array(colour, np.uint8), axis=-1).sum())


@pytest.fixture
def frame():
    return np.full((480, 640, 3), 90, np.uint8)


def test_returns_a_new_image_and_leaves_the_input_alone(frame):
    before = frame.copy()
    out = draw_overlay(frame, _prediction(), fps=12.3, risk_threshold=0.3)
    assert out is not frame and out.shape == frame.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(frame, before)
    assert not np.array_equal(out, frame)


def test_guide_box_colour_follows_quality_and_channel_order(frame):
    ok = draw_overlay(frame, _prediction(), crop_fraction=0.6)
    assert _count(ok, GREEN_RGB) > 500 and _count(ok, ORANGE_RGB) == 0
    retake = draw_overlay(frame, _prediction(retake=True), crop_fraction=0.6)
    assert _count(retake, ORANGE_RGB) > 500
    bgr = draw_overlay(frame, _prediction(), crop_fraction=0.6, color_order="BGR")
    assert _count(bgr, GREEN_RGB[::-1]) > 500 and _count(bgr, GREEN_RGB) == 0
    # the box sits where the contract's crop is: a 288 px centred square at crop 0.6
    assert _count(ok, GREEN_RGB, (176, 96, 184, 384)) > 200  # left edge x=176


def test_risk_bar_length_follows_risk_and_colour_follows_flag(frame):
    high = draw_overlay(frame, _prediction(risk=0.8, flagged=True), risk_threshold=0.3)
    low = draw_overlay(frame, _prediction(risk=0.2, flagged=False), risk_threshold=0.3)
    assert _count(high, RED_RGB) > 2 * _count(low, (240, 200, 40)) > 0
    assert _count(low, RED_RGB) == 0


def test_the_caveat_is_always_drawn(frame):
    def bright(image, box):  # white, anti-aliased text
        region = image[box[1] : box[3], box[0] : box[2]]
        return int((region.min(axis=-1) > 200).sum())

    for pred in (None, _prediction()):
        assert bright(draw_overlay(frame, pred), (0, 440, 200, 480)) > 150  # "Not a diagnosis"
    # and nothing else is drawn there without a prediction
    assert bright(draw_overlay(frame, None), (0, 0, 640, 430)) == 0


def test_fast_enough_for_every_frame(frame):
    pred = _prediction()
    draw_overlay(frame, pred, fps=10.0)
    start = time.perf_counter()
    for _ in range(20):
        draw_overlay(frame, pred, fps=10.0, risk_threshold=0.3)
    per_frame_ms = (time.perf_counter() - start) / 20 * 1000
    assert per_frame_ms < 15, f"{per_frame_ms:.1f} ms per overlay"


def test_bad_input_raises(frame):
    with pytest.raises(ValueError, match="color_order"):
        draw_overlay(frame, None, color_order="HSV")
    with pytest.raises(ValueError, match="uint8"):
        draw_overlay(frame.astype(np.float32), None)
