"""Judge one idea without training by the paired rule: shrink every image to ISIC 2019's 84 px thumbnail size
before the model's input.

    python bench/resolution_screen.py runs/all_s0 runs/all_s1 runs/all_s2 --int8 int8x4.tflite

(bench/results/resolution.json)

Many of the recipe's training images are ISIC 2019's 84 px thumbnails, enlarged to 128 px; the sharp
collections (isic9, HAM10000 and ISIC 2019's HAM10000 part, benign/malignant, PH2) are not. Each run's
int8 file scores every set of bench/recipe.py as it is and with every image shrunk to 84 px (area) and
enlarged back (bilinear), the two resizes of the shared preprocessing, as a kiosk would have to do to every
frame (it cannot know an image's source). Paired by seed on the same test images (bench/paired.py): the
figure is the five-set mean malignancy AUC; the balanced accuracy of the labelled test parts is reported
beside it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from paired import PairedSet
from recipe import int8_probabilities, scored_sets, scores
from results import paired_screen

from edge.image.preprocess import area_resize, linear_resize
from edge.model.classifier import Classifier
from training.runfolder import RunFolder

THUMBNAIL = 84  # ISIC 2019's non-HAM10000 images in ../shared/data


def shrunk(images: np.ndarray, px: int) -> np.ndarray:
    """Every image shrunk to ``px`` and enlarged back to its size."""
    return np.stack([linear_resize(area_resize(np.asarray(im), px), im.shape[0]) for im in images])


def paired_run(run: Path, int8_name: str) -> tuple[dict, dict[str, PairedSet]]:
    int8 = Classifier(run / int8_name, threads=2)
    malignant = list(int8.contract.malignant_indices)
    row: dict = {"run": str(run), "sets": {}}
    paired = {}
    for s in scored_sets(run, RunFolder(run).contract()):
        probs = [int8_probabilities(int8, images) for images in (s.images, shrunk(np.asarray(s.images), THUMBNAIL))]
        paired[s.name] = PairedSet(s.bad, *(p[:, malignant].sum(1) for p in probs))
        row["sets"][s.name] = {name: scores(s, p, int8.contract) for name, p in zip(("as_is", "shrunk"), probs)}
        logging.info("%s %s: AUC %.4f -> %.4f", run.name, s.name, row["sets"][s.name]["as_is"]["malignant_auc"],
                     row["sets"][s.name]["shrunk"]["malignant_auc"])  # fmt: skip
    return row, paired


if __name__ == "__main__":
    paired_screen("resolution", __doc__, paired_run, thumbnail_px=THUMBNAIL)
