"""The edge segmenter's measures, crop and fallback, with a stand-in model (no TensorFlow)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.capture.sources import Frame
from edge.image.overlay import draw_overlay
from edge.image.preprocess import area_resize, preprocess
from edge.model.classifier import Classifier
from edge.model.contract import ContractError, ModelContract
from edge.model.segment import Lesion, Segmenter, lesion_input, mask_from_logits, measure_lesion, square_crop
from edge.run.pipeline import iter_results
from tests.edge.edge_synth import make_lesion

SEG_CONTRACT = ModelContract(task="segment", labels=("background", "lesion"), image_size=64)


class _FakeModel:
    """Returns fixed logits at half resolution, like the trained segmenter's output."""

    def __init__(self, logits: np.ndarray) -> None:
        self.logits = logits.astype(np.float32)[..., None]
        self.last_invoke_ms = 1.5
        self.inputs: list[np.ndarray] = []

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.inputs.append(image)
        return self.logits


def fake_segmenter(logits: np.ndarray, contract: ModelContract = SEG_CONTRACT) -> Segmenter:
    seg = Segmenter.__new__(Segmenter)  # a real Segmenter, minus the interpreter
    seg.contract, seg.model, seg.min_area, seg.margin = contract, _FakeModel(logits), 0.01, 0.2
    return seg


def _disc(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, 4.0, -4.0)


def test_measures_tell_a_circle_from_a_ragged_border():
    circle = np.zeros((200, 200), np.uint8)
    cv2.circle(circle, (100, 100), 60, 1, -1)
    m = measure_lesion(circle)
    assert m["area_fraction"] == pytest.approx(np.pi * 60**2 / 200**2, rel=0.03)
    assert m["irregularity"] < 0.08 and m["perimeter_ratio"] == pytest.approx(1.0, abs=0.03)
    star = np.zeros((200, 200), np.uint8)
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    radii = np.where(np.arange(24) % 2, 30, 85)
    points = np.stack([100 + radii * np.cos(angles), 100 + radii * np.sin(angles)], 1).astype(np.int32)
    cv2.fillPoly(star, [points], 1)
    s = measure_lesion(star)
    assert s["irregularity"] > 0.5 and s["perimeter_ratio"] > 1.3
    tiny = np.zeros((200, 200), np.uint8)
    tiny[10:13, 10:13] = 1
    assert measure_lesion(tiny) is None and measure_lesion(np.zeros((50, 50), np.uint8)) is None


def test_square_crop_is_square_with_a_margin_and_stays_inside():
    assert square_crop((100, 100, 140, 120), 480, 640, margin=0.25) == (90, 80, 150, 140)
    x0, y0, x1, y1 = square_crop((0, 0, 30, 400), 480, 640)
    assert x1 - x0 == y1 - y0 == 480 and x0 == 0 and y0 == 0
    x0, y0, x1, y1 = square_crop((600, 440, 640, 480), 480, 640)
    assert x1 == 640 and y1 == 480 and x1 - x0 == y1 - y0


def test_segment_maps_the_outline_to_frame_pixels():
    # the lesion disc sits right of centre in the 32x32 output; the frame is 480x640 (centre square x 80..560)
    seg = fake_segmenter(_disc(32, cx=22, cy=16, r=6))
    frame = make_lesion(480, 640)
    lesion = seg.segment(frame)
    assert lesion.found and lesion.invoke_ms == 1.5
    assert seg.model.inputs[0].shape == (64, 64, 3)
    scale = 480 / 32  # output pixels -> frame pixels
    cx, cy = lesion.outline[:, 0].mean(), lesion.outline[:, 1].mean()
    assert cx == pytest.approx(80 + 22.5 * scale, abs=8) and cy == pytest.approx(16.5 * scale, abs=8)
    assert lesion.area_fraction == pytest.approx(np.pi * 6**2 / 32**2, rel=0.1)
    bx0, by0, bx1, by1 = lesion.box
    x0, y0, x1, y1 = lesion.crop
    assert x1 - x0 == y1 - y0 and x0 <= bx0 and y0 <= by0 and x1 >= bx1 and y1 >= by1
    record = lesion.to_dict()
    assert json.loads(json.dumps(record)) == record and len(record["outline"]) >= 4
    assert set(record) == {"found", "area_fraction", "irregularity", "perimeter_ratio", "box", "crop", "outline",
                           "segment_ms"}  # fmt: skip


@pytest.mark.training  # the tiny classifier is built with TensorFlow
def test_no_lesion_falls_back_to_the_centre_crop(tiny_tflite):
    seg = fake_segmenter(np.full((32, 32), -5.0))
    clf = Classifier(tiny_tflite)
    frame = make_lesion(240, 320)
    lesion = seg.segment(frame)
    assert not lesion.found and lesion.crop is None and lesion.outline is None and lesion.area_fraction == 0.0
    assert lesion.to_dict()["fallback"].startswith("centre crop")
    assert np.array_equal(lesion_input(frame, lesion, clf.contract), preprocess(frame, clf.contract))
    [result] = iter_results(clf, [Frame(frame, 0.0, "skin.jpg", 0)], segmenter=seg)
    plain = next(iter_results(clf, [Frame(frame, 0.0, "skin.jpg", 0)]))
    assert result.prediction.probabilities == plain.prediction.probabilities
    assert result.to_record()["lesion"]["found"] is False and "lesion" not in plain.to_record()


@pytest.mark.training
def test_found_lesion_crops_the_classifier_input_and_is_drawn(tiny_tflite):
    seg = fake_segmenter(_disc(32, cx=22, cy=16, r=6))
    clf = Classifier(tiny_tflite)
    frame = make_lesion(480, 640, center=(0.5, 0.72))
    [result] = iter_results(clf, [Frame(frame, 0.0, "a.jpg", 0)], segmenter=seg, thresholds=None)
    lesion = result.lesion
    x0, y0, x1, y1 = lesion.crop
    expected = area_resize(frame[y0:y1, x0:x1], 64)  # the square around the lesion, shrunk as preprocessing does
    assert np.array_equal(lesion_input(frame, lesion, clf.contract), expected)
    record = result.to_record()
    assert record["lesion"]["found"] and record["lesion"]["area_fraction"] > 0.05
    plain = draw_overlay(frame, result.prediction)
    drawn = draw_overlay(frame, result.prediction, lesion=lesion)
    changed = np.argwhere((plain != drawn).any(axis=2))
    assert len(changed) > 100  # the outline and the crop square
    assert changed[:, 1].min() >= x0 - 3 and changed[:, 1].max() <= x1 + 3


def test_mask_from_logits_resizes_and_thresholds_at_zero():
    logits = np.array([[-1.0, 1.0], [1.0, -1.0]])
    assert mask_from_logits(logits, 2).tolist() == [[0, 1], [1, 0]]
    big = mask_from_logits(_disc(32, 16, 16, 8)[..., None], 64)
    assert big.shape == (64, 64) and big.mean() == pytest.approx(np.pi * 16**2 / 64**2, rel=0.1)


@pytest.mark.training
def test_a_classifier_is_not_a_segmenter(tiny_tflite, tmp_path):
    with pytest.raises(ContractError, match="not a segmenter"):
        Segmenter(tiny_tflite)
    with pytest.raises(FileNotFoundError):
        Segmenter(tmp_path / "missing.tflite")
    assert Lesion(False, 0.0).to_dict()["crop"] is None
