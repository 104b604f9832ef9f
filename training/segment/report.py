"""What a segmentation run leaves behind besides the model: validation overlays and a model card."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.model.contract import ModelContract
from training.runfolder import RunFolder

__all__ = ["save_overlays", "write_segment_card"]

log = logging.getLogger(__name__)

_TRUTH = (60, 220, 80)  # RGB: ground truth outline
_PRED = (240, 60, 200)  # RGB: predicted outline


def _outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], thickness: int) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, colour, thickness, cv2.LINE_AA)


def save_overlays(
    out_dir: Path,
    images: np.ndarray,
    truths: np.ndarray,
    preds: np.ndarray,
    names: list[str],
    jaccards: list[float],
    count: int = 6,
) -> list[Path]:
    """PNG files of validation images with the ground truth (green) and predicted (magenta) outlines.

    Picks the worst, the best and evenly spaced images in between by Jaccard, so the overlays
    show failures as well as successes.
    """
    order = np.argsort(jaccards)
    pick = order[np.unique(np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(int))]
    folder = out_dir / "overlays"
    folder.mkdir(exist_ok=True)
    paths = []
    thickness = max(1, images.shape[1] // 160)
    for i in pick:
        canvas = images[i].copy()
        _outline(canvas, truths[i], _TRUTH, thickness)
        _outline(canvas, preds[i], _PRED, thickness)
        path = folder / f"{Path(names[i]).stem}_jaccard{jaccards[i]:.2f}.png"
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def write_segment_card(out_dir: Path, contract: ModelContract, metrics: dict[str, Any], config: dict[str, Any]) -> Path:
    """A Markdown model card (data, model, ISIC 2018 Task 1 scores on validation, limits) + metrics.json."""
    val = metrics["validation"]
    text = f"""# Model card: {contract.arch} lesion segmenter

**Not a medical device. It outlines the lesion to crop and measure it for a classifier at a kiosk;
its outline and measures are not a diagnosis.**

## Data
- Source: `{config["data"]}` (images with binary lesion masks); fingerprint {contract.data_fingerprint}.
- Split: seeded ({config["seed"]}), grouped (identical and near-duplicate images stay on one side), stratified
  by diagnosis where the data names one; validation fraction {config["val_fraction"]}: {metrics["n_train"]} train /
  {metrics["n_val"]} validation images; {metrics["n_skipped"]} unreadable pairs skipped.

## Model
- Encoder MobileNetV3-Small (weights `{config["weights"]}`, batch norm re-parametrised, momentum 0.9); decoder:
  bilinear upsampling, skip connections from strides 16, 8, 4 and 2, one separable convolution per step.
  Output: 1-channel lesion logits at half the input resolution ({contract.image_size // 2}x{contract.image_size // 2}).
- Input: RGB uint8, centre square crop ({contract.crop_fraction:.2f} of the short side), resized to
  {contract.image_size}; the model rescales inside the graph. Masks get the same crop and resize.
- Loss: binary cross-entropy + Dice. Augmentation (image and mask together): flips, rotation, zoom; brightness
  and contrast on the image. Decoder {config["head_epochs"]} epochs on a frozen encoder, then everything up to
  {config["epochs"]} epochs; the epoch with the best validation mean Jaccard is kept (epoch {metrics["best_epoch"]}).
  Training took {metrics["train_seconds"] / 60:.1f} min.

## Validation metrics (ISIC 2018 Task 1 scoring, at {contract.image_size}x{contract.image_size} inside the crop)
- Mean Jaccard {val["mean_jaccard"]:.3f}; thresholded Jaccard (per-image Jaccard below {val["jaccard_threshold"]}
  counts as 0) {val["thresholded_jaccard"]:.3f}; mean Dice {val["mean_dice"]:.3f}; worst image {val["min_jaccard"]:.3f};
  {val["below_threshold"]} of {val["n"]} images below {val["jaccard_threshold"]}.
- Overlays of validation images (green: expert outline, magenta: model) are in `overlays/`.

## Limits
- Trained on {metrics["n_train"]} dermoscopy images from one collection; other cameras, phone photos and skin
  types outside it are out of distribution.
- Only the centred square is analysed: lesion parts outside it are not seen.
- Border irregularity measured from this outline depends on the outline's quality; it is a description, not a
  diagnostic criterion.
"""
    path = out_dir / "model_card.md"
    path.write_text(text)
    RunFolder(out_dir).write_metrics(metrics)
    return path
