"""Screen one idea without training: shrink every sharp image to ISIC 2019's 84 px before the model's input.

    python bench/resolution_screen.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2   # bench/results/resolution.json

Most of the recipe's training images are ISIC 2019's 84 px thumbnails, enlarged to 128 px; the sharp
collections (isic9, HAM10000, benign/malignant, PH2) are not. Each run's int8 file scores every set of
bench/recipe.py as it is and with each sharp image shrunk to 84 px (area) and enlarged back (bilinear),
the two resizes of the shared preprocessing. ISIC 2019's images are 84 px already and stay as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recipe import int8_probabilities, scored_sets, scores
from results import screen_runs

from edge.image.preprocess import area_resize, linear_resize
from edge.model.classifier import Classifier
from training.runfolder import RunFolder

THUMBNAIL = 84  # ISIC 2019's images in ../shared/data
AT_THUMBNAIL_SIZE = ("isic2019",)


def shrunk(images: np.ndarray, px: int) -> np.ndarray:
    """Every image shrunk to ``px`` and enlarged back to its size."""
    return np.stack([linear_resize(area_resize(np.asarray(im), px), im.shape[0]) for im in images])


def screen_run(run: Path) -> dict:
    contract = RunFolder(run).contract()
    int8 = Classifier(run / "int8.tflite", threads=2)
    out = {}
    for s in scored_sets(run, contract):
        as_is = scores(s, int8_probabilities(int8, s.images), int8.contract)
        small = as_is if s.name in AT_THUMBNAIL_SIZE else scores(
            s, int8_probabilities(int8, shrunk(np.asarray(s.images), THUMBNAIL)), int8.contract)  # fmt: skip
        out[s.name] = {"as_is": as_is, "shrunk": small}
    return out


if __name__ == "__main__":
    screen_runs("resolution", __doc__, lambda run: {"run": str(run), **screen_run(run)}, thumbnail_px=THUMBNAIL)
