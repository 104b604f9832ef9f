"""Where the int8 file and the Keras model disagree, and how much agreement int8 output can give at all.

    python bench/int8_floor.py runs/isic8_s0 runs/isic8_s1 runs/isic8_s2 runs/isic8_s3 runs/isic8_s4

For each run of bench/recipe.py, on every set it scores: the int8 file's top-1 agreement with the
Keras model; the agreement left if the file computed the Keras logits exactly and only rounded them
to its int8 output tensor (its own scale and zero point): a ceiling no int8 file of this model can
pass; the share of images whose two best Keras logits lie within one output step; how far inside
the network the error is (mean |int8 - Keras| logit, in output steps); where the disagreements sit
(within 1 and 4 steps of a tie); and whether the kiosk's malignancy flag agrees (both read through
the int8 file's contract: its temperature and threshold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from recipe import rounded_to_grid, scored_sets
from results import screen_runs

from edge.model.classifier import Classifier, calibrated_probabilities
from edge.model.runtime import TFLiteModel
from training.evaluate import predict_logits
from training.runfolder import RunFolder


def flags(logits: np.ndarray, contract) -> np.ndarray:
    p = calibrated_probabilities(logits, contract.temperature)
    return p[:, list(contract.malignant_indices)].sum(1) >= contract.risk_threshold


def floor_run(run: Path) -> dict:
    import keras

    contract = RunFolder(run).contract()
    int8 = Classifier(run / "int8.tflite", threads=2)
    scale, zero = TFLiteModel(run / "int8.tflite").output["quantization"]
    model = keras.saving.load_model(RunFolder(run).model_file, compile=False)
    out: dict = {"run": str(run), "output_step": float(scale), "sets": {}}
    for s in scored_sets(run, contract):
        kl = predict_logits(model, s.images)
        il = np.stack([int8.logits(im) for im in s.images])
        top2 = np.sort(kl, axis=1)[:, -2:]
        steps = (top2[:, 1] - top2[:, 0]) / scale  # the Keras model's margin, in output steps
        differ = kl.argmax(1) != il.argmax(1)
        out["sets"][s.name] = {
            "n": len(kl),
            "top1_agreement": float(1 - differ.mean()),
            "rounding_ceiling": float((rounded_to_grid(kl, scale, zero).argmax(1) == kl.argmax(1)).mean()),
            "within_one_step": float((steps < 1).mean()),
            "mean_logit_error_steps": float(np.abs(il - kl).mean() / scale),
            "disagreements": int(differ.sum()),
            "disagreements_within_1": int((differ & (steps < 1)).sum()),
            "disagreements_within_4": int((differ & (steps < 4)).sum()),
            "flag_agreement": float((flags(kl, int8.contract) == flags(il, int8.contract)).mean()),
        }
    return out


if __name__ == "__main__":
    screen_runs("int8_floor", __doc__, floor_run)
