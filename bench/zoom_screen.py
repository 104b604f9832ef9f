"""Judge one test-time view without training by the paired rule: the lesion's centre, enlarged.

    python bench/zoom_screen.py runs/all_s0 runs/all_s1 runs/all_s2 --int8 int8x4.tflite

(bench/results/zoom.json) Dermoscopy centres the lesion; its flipped views are already averaged inside the
shipped file. This screen averages each run's int8 file (with its flips) over the image and its central
``ZOOM`` square enlarged back to the input size (convert.views: the crop and bilinear resize a file built
with ``convert --zoom`` makes, rounded to its uint8 pixels), against the file on the image alone, paired by seed
on the same test images (bench/paired.py). The figure is the five-set mean malignancy AUC; the balanced
accuracy of the labelled test parts is reported beside it. It costs twice the backbone's work, so a kept
zoom would still have to fit the edge budget in place of some flips or seeds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from paired import PairedSet
from recipe import int8_probabilities, scored_sets, scores
from results import paired_screen

from convert.views import flipped
from edge.model.classifier import Classifier, calibrated_probabilities
from training.runfolder import RunFolder

ZOOM = 0.75  # the central square's side, as a share of the image's


def paired_run(run: Path, int8_name: str) -> tuple[dict, dict[str, PairedSet]]:
    int8 = Classifier(run / int8_name, threads=2)
    contract = int8.contract
    malignant = list(contract.malignant_indices)
    row: dict = {"run": str(run), "sets": {}}
    paired = {}
    for s in scored_sets(run, RunFolder(run).contract()):
        whole = np.log(int8_probabilities(int8, s.images))  # log-softmax: logits up to a constant per image
        centre = np.log(int8_probabilities(int8, flipped(np.asarray(s.images), 1, ZOOM)[1]))
        probs = [np.exp(whole), calibrated_probabilities((whole + centre) / 2)]
        paired[s.name] = PairedSet(s.bad, *(p[:, malignant].sum(1) for p in probs))
        row["sets"][s.name] = {name: scores(s, p, contract) for name, p in zip(("image", "with_zoom"), probs)}
        logging.info("%s %s: AUC %.4f -> %.4f", run.name, s.name, row["sets"][s.name]["image"]["malignant_auc"],
                     row["sets"][s.name]["with_zoom"]["malignant_auc"])  # fmt: skip
    return row, paired


if __name__ == "__main__":
    paired_screen("zoom", __doc__, paired_run, zoom=ZOOM)
