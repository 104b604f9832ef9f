"""Image-quality gates on the guide box: is this frame worth classifying, or should the user retake it?

Blur, exposure, an empty box, and colour: the model reads colour, so a greyscale, 1-bit, sepia or
single-channel image (a camera in monochrome mode, an infrared module, a scanned printout) asks for a
colour photo instead of a confident answer.

All measures are taken on the centred guide square (``contract.crop_fraction`` of the short side, the
region the model sees), resized to a fixed analysis size so the numbers do not depend on the camera
resolution. The default thresholds were tuned on real dermoscopy (ISIC 9-class and HAM10000): about
99% of those images pass, while blurred, dark, blank and overexposed frames fail (see
``tests/edge/test_quality.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.image.preprocess import ImageError, center_box

__all__ = ["ISSUES", "QualityThresholds", "assess_quality", "colour_spread", "guide_box", "guide_box_gray"]

log = logging.getLogger(__name__)

# The issue names a failed gate reports, in the order they are checked; short enough for an overlay.
ISSUES = ("blurry", "too dark", "too bright", "no lesion in the box", "a colour photo is needed")

_RANKS = np.arange(32 * 32, dtype=np.float32)  # positions in the sorted 32x32 thumbnail


@dataclass(frozen=True)
class QualityThresholds:
    """Limits for :func:`assess_quality`. Pixel values are 0-255 luminance at ``analysis_size``.

    Measured on 600 real dermoscopy images (isic9 + ham10000) at the defaults: sharpness 1st
    percentile 15 (images blurred with a Gaussian of sigma 2 px: 95th percentile 6), brightness
    80-226, clipped fractions at most 0.17, lesion contrast at least 11 (a blank, noisy skin-coloured
    frame: 0-1).
    """

    analysis_size: int = 160  # the guide box is resized to this square before measuring
    min_sharpness: float = 10.0  # variance of the Laplacian; below reads "blurry"
    min_brightness: float = 50.0  # mean luminance; below reads "too dark"
    max_brightness: float = 235.0  # mean luminance; above reads "too bright"
    dark_level: int = 8  # a pixel at or below this is clipped black
    bright_level: int = 247  # a pixel at or above this is clipped white
    max_dark_fraction: float = 0.4  # more clipped-black pixels than this reads "too dark"
    max_bright_fraction: float = 0.35  # more clipped-white pixels than this reads "too bright"
    min_lesion_contrast: float = 8.0  # median minus 5th percentile of a 32x32 thumbnail; below: no lesion
    # spread of the chromaticity (r, g) over the well-exposed pixels; greyscale, 1-bit, sepia and one-channel
    # images have a constant chromaticity (0.000-0.003 on 1,650 real images so altered); real dermoscopy
    # (isic9, HAM10000, ISIC 2019, benign/malignant, PH2) 0.006 at the lowest, 0.011 at the 0.5th percentile
    min_colour_spread: float = 0.004

    def __post_init__(self) -> None:
        if not 32 <= self.analysis_size <= 1024:
            raise ValueError(f"analysis_size must be within 32..1024, got {self.analysis_size}")
        if not self.min_brightness < self.max_brightness:
            raise ValueError(
                f"min_brightness ({self.min_brightness}) must be below max_brightness ({self.max_brightness})"
            )
        for name in ("max_dark_fraction", "max_bright_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")


def guide_box(image: np.ndarray, crop_fraction: float = 1.0, size: int = 160) -> np.ndarray:
    """The guide box of an RGB uint8 HWC image as a ``size`` x ``size`` square (RGB, or luminance for
    a 2-D image)."""
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, :3]
    elif image.ndim != 2:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype}")
    x0, y0, x1, y1 = center_box(image.shape[0], image.shape[1], crop_fraction)
    box = image[y0:y1, x0:x1]
    if box.shape[0] == size:
        return box
    interp = cv2.INTER_AREA if box.shape[0] >= size else cv2.INTER_LINEAR
    return cv2.resize(box, (size, size), interpolation=interp)


def guide_box_gray(image: np.ndarray, crop_fraction: float = 1.0, size: int = 160) -> np.ndarray:
    """The guide box of an RGB uint8 HWC image as a ``size`` x ``size`` uint8 luminance square."""
    box = guide_box(image, crop_fraction, size)
    return box if box.ndim == 2 else cv2.cvtColor(box, cv2.COLOR_RGB2GRAY)


def colour_spread(box: np.ndarray) -> float | None:
    """How much the chromaticity (r, g) = (R, G) / (R + G + B) varies over the box's well-exposed pixels.

    0 for greyscale, 1-bit, sepia-toned or single-channel images (their chromaticity is one point, whatever
    the brightness); skin and lesion colours differ, so real dermoscopy spreads. Pixels that are dark
    (R + G + B <= 60) or clipped (a channel >= 250) carry no reliable chromaticity and are left out; None
    when fewer than 50 are left (a black or white frame: an exposure problem, not a colour one). Measured
    on every third pixel (never averaged: averaging mixes clipped and unclipped chromaticities).
    """
    if box.ndim == 2:
        return 0.0
    f = box[::3, ::3].reshape(-1, 3).astype(np.float32)  # every third pixel: the same figure at a ninth of the cost
    total = f.sum(axis=1)
    usable = (total > 60) & (f.max(axis=1) < 250)
    if np.count_nonzero(usable) < 50:
        return None
    rg = f[usable, :2] / total[usable, None]
    return float(np.sqrt(rg.var(axis=0).sum()))


def assess_quality(
    image: np.ndarray, crop_fraction: float = 1.0, thresholds: QualityThresholds | None = None
) -> dict[str, Any]:
    """Measure the guide box of one frame and decide whether to ask for a retake.

    Args:
        image: RGB uint8 HWC frame of any size.
        crop_fraction: side of the guide square as a fraction of the short side (the contract's).
        thresholds: limits; the defaults when None.

    Returns:
        ``{"retake": bool, "issues": [names from ISSUES], "blur": sharpness (variance of the
        Laplacian, higher is sharper), "brightness": mean luminance 0-255, "dark_fraction",
        "bright_fraction": clipped pixel fractions 0-1, "lesion_contrast": 0-255, "colour_spread": see
        :func:`colour_spread`}``, values rounded
        for JSON.

    Raises:
        ImageError: not an RGB uint8 image.
    """
    t = thresholds or QualityThresholds()
    box = guide_box(image, crop_fraction, t.analysis_size)
    gray = box if box.ndim == 2 else cv2.cvtColor(box, cv2.COLOR_RGB2GRAY)
    colour = colour_spread(box)
    sharpness = float(cv2.meanStdDev(cv2.Laplacian(gray, cv2.CV_32F))[1][0, 0] ** 2)
    brightness = float(gray.mean())
    dark = float(np.count_nonzero(gray <= t.dark_level)) / gray.size
    bright = float(np.count_nonzero(gray >= t.bright_level)) / gray.size
    thumb = np.sort(cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA), axis=None).astype(np.float32)
    lesion_contrast = float(np.interp(0.50 * 1023, _RANKS, thumb) - np.interp(0.05 * 1023, _RANKS, thumb))

    issues = []
    if sharpness < t.min_sharpness:
        issues.append(ISSUES[0])
    if brightness < t.min_brightness or dark > t.max_dark_fraction:
        issues.append(ISSUES[1])
    if brightness > t.max_brightness or bright > t.max_bright_fraction:
        issues.append(ISSUES[2])
    if lesion_contrast < t.min_lesion_contrast and ISSUES[1] not in issues and ISSUES[2] not in issues:
        issues.append(ISSUES[3])  # a black or white frame is an exposure problem, not a missing lesion
    if colour is not None and colour < t.min_colour_spread and ISSUES[3] not in issues:
        issues.append(ISSUES[4])  # the model reads colour: without it, melanomas look like nevi (an empty box
        # has its own, more useful, issue)
    if issues:
        log.debug("quality gate failed: %s", ", ".join(issues))
    return {
        "retake": bool(issues),
        "issues": issues,
        "blur": round(sharpness, 2),
        "brightness": round(brightness, 2),
        "dark_fraction": round(dark, 4),
        "bright_fraction": round(bright, 4),
        "lesion_contrast": round(lesion_contrast, 2),
        "colour_spread": None if colour is None else round(colour, 4),
    }
