"""Real PH2 dermoscopy (../shared/data/ph2): the reader, and the shipped segmenter on real lesions.

Skips with a reason where the data (or the shipped model) is absent, as in a user's clone.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from edge import app
from edge.image.preprocess import load_image, preprocess_mask
from tests.conftest import ROOT, shared_data
from training.segment.data import find_mask_pairs, load_mask
from training.segment.metrics import segmentation_metrics

SEGMENTER = ROOT / "models" / "lesion_segment_int8.tflite"
CLASSIFIER = ROOT / "models" / "isic8_int8.tflite"


@pytest.fixture(autouse=True)
def _drop_cli_log_handler():
    yield
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "edge-detect"]


def _shipped(path):
    if not path.is_file():
        pytest.skip(f"shipped model not available: {path} is absent")
    return path


def test_ph2_pairs_are_found_and_masks_fit_their_images():
    pairs = find_mask_pairs(shared_data("ph2"))
    assert len(pairs) == 150
    assert {p.stratum for p in pairs} == {"common_nevus", "atypical_nevus", "melanoma"}
    for pair in pairs[::30]:
        mask = load_mask(pair.mask)
        assert mask.shape == load_image(pair.image).shape[:2] and 0.02 < mask.mean() < 0.98


def test_shipped_segmenter_outlines_real_lesions():
    """A smoke check on 12 PH2 images (some were training images): the benchmark is the validation split."""
    from edge.model.segment import Segmenter

    pairs = find_mask_pairs(shared_data("ph2"))[::12]
    seg = Segmenter(_shipped(SEGMENTER), threads=1)
    preds, truths, found = [], [], 0
    for pair in pairs:
        image = load_image(pair.image)
        found += seg.segment(image).found
        preds.append(seg.mask(image))
        truths.append(preprocess_mask(load_mask(pair.mask), seg.contract))
    assert found == len(pairs)
    assert segmentation_metrics(preds, truths)["mean_jaccard"] > 0.8


def test_edge_detect_segment_uses_the_shipped_model_by_default():
    image = find_mask_pairs(shared_data("ph2"))[0].image
    _shipped(SEGMENTER)
    result = CliRunner().invoke(
        app.cli, ["--model", str(_shipped(CLASSIFIER)), "--segment", "--source", str(image), "--json"]
    )
    assert result.exit_code == 0, result.output
    [record] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    lesion = record["lesion"]
    assert lesion["found"] and 0.05 < lesion["area_fraction"] < 0.95 and len(lesion["outline"]) >= 8
    assert 0 <= lesion["irregularity"] < 0.6 and lesion["perimeter_ratio"] >= 1.0
    h, w = load_image(image).shape[:2]
    assert all(0 <= x < w and 0 <= y < h for x, y in np.array(lesion["outline"]))
