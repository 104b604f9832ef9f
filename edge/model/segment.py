"""Find the lesion before classifying it: a TFLite segmenter, its outline, size, border and crop.

    >>> seg = Segmenter("models/lesion_segment_int8.tflite")
    >>> lesion = seg.segment(frame)              # outline, area fraction, border irregularity
    >>> model_input = lesion_input(frame, lesion, classifier.contract)

The segmenter looks at the same centred square as the classifier would (its contract's crop),
returns a lesion mask there, and the largest lesion region is measured in frame pixels. The
classifier then gets the lesion's bounding box, widened by a margin and made square; when no
lesion is found it gets the usual centre crop. NumPy + OpenCV + a TFLite runtime only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.image.preprocess import center_box, preprocess
from edge.model.contract import ContractError, ModelContract
from edge.model.modelfile import read_contract
from edge.model.runtime import TFLiteModel

__all__ = ["Lesion", "Segmenter", "lesion_input", "mask_from_logits", "measure_lesion", "square_crop"]

log = logging.getLogger(__name__)


def mask_from_logits(logits: np.ndarray, size: int) -> np.ndarray:
    """A ``size`` x ``size`` uint8 0/1 lesion mask from the model's logit map (any resolution).

    Logits are resized bilinearly (a smooth border) and thresholded at 0 (probability 0.5). Used
    by training's evaluation, ``convert``'s fidelity check and the edge alike.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim == 3:
        logits = logits[..., 0]
    if logits.shape != (size, size):
        logits = cv2.resize(logits, (size, size), interpolation=cv2.INTER_LINEAR)
    return (logits > 0).astype(np.uint8)


@dataclass(frozen=True)
class Lesion:
    """The segmenter's finding on one frame, in frame pixel coordinates (x right, y down).

    Attributes:
        found: a lesion region at least ``min_area`` of the field of view was found.
        area_fraction: lesion area / area of the segmenter's field of view (the centred square).
        irregularity: 1 - 4*pi*area/perimeter^2 of the outline: 0 for a circle, towards 1 for a
            ragged or elongated border; None when nothing was found.
        perimeter_ratio: outline perimeter / its convex hull's perimeter (1 = convex); None if not found.
        outline: (K, 2) int32 polygon (x, y) of the largest lesion region, simplified; None if not found.
        box: the lesion's bounding box (x0, y0, x1, y1); None if not found.
        crop: the square (x0, y0, x1, y1) the classifier is given; None when not found (the
            classifier then takes its contract's centre crop).
        invoke_ms: the segmenter's interpreter time.
    """

    found: bool
    area_fraction: float
    crop: tuple[int, int, int, int] | None = None
    irregularity: float | None = None
    perimeter_ratio: float | None = None
    outline: np.ndarray | None = None
    box: tuple[int, int, int, int] | None = None
    invoke_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "found": self.found,
            "area_fraction": round(self.area_fraction, 4),
            "irregularity": None if self.irregularity is None else round(self.irregularity, 4),
            "perimeter_ratio": None if self.perimeter_ratio is None else round(self.perimeter_ratio, 4),
            "box": None if self.box is None else list(self.box),
            "crop": None if self.crop is None else list(self.crop),
            "outline": None if self.outline is None else self.outline.tolist(),
            "segment_ms": round(self.invoke_ms, 3),
        }
        if not self.found:
            out["fallback"] = "centre crop: no lesion found"
        return out


def square_crop(
    box: tuple[int, int, int, int], height: int, width: int, margin: float = 0.2
) -> tuple[int, int, int, int]:
    """A square around ``box``: side = longer box side x (1 + 2 * margin), kept inside the frame."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    side = int(round(min(max(side, 16), height, width)))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left = int(round(min(max(cx - side / 2.0, 0), width - side)))
    top = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return left, top, left + side, top + side


def measure_lesion(mask: np.ndarray, min_area: float = 0.01) -> dict[str, Any] | None:
    """Outline, area fraction and border measures of the largest region of a square 0/1 mask.

    Returns None when the largest region covers less than ``min_area`` of the mask. Coordinates
    are in mask pixels; the border measures do not depend on scale.
    """
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    total = float(mask.shape[0] * mask.shape[1])
    filled = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(filled, [contour], -1, 1, -1)
    fraction = float(filled.sum()) / total  # pixels of the region (its holes included)
    if fraction < min_area:
        return None
    # A one-pixel tolerance removes the pixel staircase, which would inflate the perimeter.
    smooth = cv2.approxPolyDP(contour, 1.0, True)
    area = cv2.contourArea(smooth)
    perimeter = cv2.arcLength(smooth, True)
    hull_perimeter = cv2.arcLength(cv2.convexHull(smooth), True)
    circularity = 4.0 * math.pi * area / perimeter**2 if perimeter > 0 else 1.0
    outline = cv2.approxPolyDP(contour, max(1.0, 0.005 * perimeter), True).reshape(-1, 2)
    return {
        "area_fraction": fraction,
        "irregularity": float(min(max(1.0 - circularity, 0.0), 1.0)),
        "perimeter_ratio": float(perimeter / hull_perimeter) if hull_perimeter > 0 else 1.0,
        "outline": outline,
    }


class Segmenter:
    """A TFLite lesion segmenter and its embedded contract (task "segment").

    Args:
        model_path: a ``.tflite`` segmenter written by ``convert``.
        threads: interpreter threads; None lets the runtime choose.
        min_area: the smallest lesion, as a fraction of the field of view, that counts as found.
        margin: widening of the lesion box on each side (fraction of its longer side) for the crop.

    Raises:
        FileNotFoundError: no such model file.
        ContractError: not a segmenter, no contract, or contract and model disagree.
    """

    def __init__(
        self, model_path: str | Path, threads: int | None = None, min_area: float = 0.01, margin: float = 0.2
    ) -> None:
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"segmentation model file {model_path} does not exist")
        self.contract = read_contract(model_path)
        if self.contract.task != "segment":
            raise ContractError(f"{model_path} is a {self.contract.task} model, not a segmenter")
        self.model = TFLiteModel(model_path, threads=threads)
        size = self.contract.image_size
        if self.model.input_shape != (1, size, size, 3):
            expected = (1, size, size, 3)
            raise ContractError(f"{model_path}: contract says input {expected}, model takes {self.model.input_shape}")
        out = tuple(int(d) for d in self.model.output["shape"])
        if len(out) != 4 or out[3] != 1 or out[1] != out[2]:
            raise ContractError(f"{model_path}: expected a square 1-channel mask output, got shape {out}")
        self.min_area, self.margin = min_area, margin

    def mask(self, image: np.ndarray) -> np.ndarray:
        """The 0/1 lesion mask over the field of view (``image_size`` square) of an RGB frame."""
        return mask_from_logits(self.model(preprocess(image, self.contract)), self.contract.image_size)

    def segment(self, image: np.ndarray) -> Lesion:
        """Find, outline and measure the lesion in an RGB uint8 HWC frame of any size."""
        h, w = image.shape[:2]
        mask = self.mask(image)
        fx0, fy0, fx1, fy1 = center_box(h, w, self.contract.crop_fraction)
        found = measure_lesion(mask, self.min_area)
        if found is None:
            return Lesion(False, float(mask.mean()), invoke_ms=self.model.last_invoke_ms)
        scale = (fx1 - fx0) / self.contract.image_size
        points = (found["outline"] + 0.5) * scale - 0.5 + np.array([fx0, fy0])
        outline = np.round(points).astype(np.int32)
        outline[:, 0] = np.clip(outline[:, 0], 0, w - 1)
        outline[:, 1] = np.clip(outline[:, 1], 0, h - 1)
        bx, by, bw, bh = cv2.boundingRect(outline)
        box = (bx, by, bx + bw, by + bh)
        return Lesion(
            True,
            found["area_fraction"],
            square_crop(box, h, w, self.margin),
            irregularity=found["irregularity"],
            perimeter_ratio=found["perimeter_ratio"],
            outline=outline,
            box=box,
            invoke_ms=self.model.last_invoke_ms,
        )


def lesion_input(image: np.ndarray, lesion: Lesion | None, contract: ModelContract) -> np.ndarray:
    """The classifier's input: the lesion's square crop, or the contract's centre crop without one."""
    if lesion is None or lesion.crop is None:
        return preprocess(image, contract)
    x0, y0, x1, y1 = lesion.crop
    return preprocess(image[y0:y1, x0:x1], contract.replace(crop_fraction=1.0))
