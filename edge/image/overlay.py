"""Draw the result on a frame: guide box, lesion outline, top-3 labels, malignancy risk bar, FPS, "Not a diagnosis".

Runs on every displayed or saved frame, so it uses only OpenCV primitives on a copy of the frame
and darkens just the panel areas behind the text (about a millisecond at 640x480).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import cv2
import numpy as np

from edge.image.preprocess import center_box
from edge.model.classifier import Prediction
from edge.model.contract import readable_label

if TYPE_CHECKING:
    from edge.model.segment import Lesion

__all__ = ["NOT_A_DIAGNOSIS", "draw_overlay"]

log = logging.getLogger(__name__)

NOT_A_DIAGNOSIS = "Not a diagnosis"

# Colours as RGB; reversed for BGR frames.
_GOOD = (60, 200, 80)
_RETAKE = (255, 160, 0)
_RISK_HIGH = (230, 40, 40)
_RISK_LOW = (240, 200, 40)
_WHITE = (255, 255, 255)
_GREY = (170, 170, 170)
_OUTLINE = (0, 230, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _darken(image: np.ndarray, x0: int, y0: int, x1: int, y1: int, factor: float = 0.35) -> None:
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = cv2.convertScaleAbs(image[y0:y1, x0:x1], alpha=factor)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thick: int) -> None:
    cv2.putText(image, text, org, _FONT, scale, color, thick, cv2.LINE_AA)


def draw_overlay(
    image: np.ndarray,
    prediction: Prediction | None = None,
    *,
    crop_fraction: float = 1.0,
    fps: float | None = None,
    risk_threshold: float | None = None,
    color_order: str = "RGB",
    lesion: Lesion | None = None,
    numbers: bool = True,
) -> np.ndarray:
    """Return a copy of ``image`` with the result drawn on it.

    Args:
        image: uint8 HWC frame (3 channels) in ``color_order``.
        prediction: the result to show; None draws only the guide box, FPS and the caveat.
        crop_fraction: the guide box side as a fraction of the short side (the contract's).
        fps: frames per second to print in the top-right corner; None prints none.
        risk_threshold: where to tick the risk bar (the contract's ``risk_threshold``).
        color_order: "RGB" or "BGR", the channel order of ``image`` (OpenCV windows and
            ``cv2.imencode`` want BGR).
        lesion: a segmenter's finding: its outline and the square the classifier saw are drawn.
        numbers: print the percentages; False (the kiosk, whose page shows them beside the view) draws
            the verdict and the risk bar only, so the screen never shows two readings at once.

    Returns:
        A new uint8 image of the same shape and channel order.
    """
    if color_order not in ("RGB", "BGR"):
        raise ValueError(f"color_order must be 'RGB' or 'BGR', got {color_order!r}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")

    def col(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return rgb[::-1] if color_order == "BGR" else rgb

    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.45, min(h, w) / 600)  # readable on a 7" screen and on a capture shrunk to 800 px
    thick = 1 if scale < 0.7 else 2
    line = int(32 * scale) + 4
    pad = max(4, int(10 * scale))
    quality = prediction.quality if prediction is not None else {}
    retake = bool(quality.get("retake")) or (prediction is not None and prediction.not_lesion)

    x0, y0, x1, y1 = center_box(h, w, crop_fraction)
    inset = max(1, thick)
    cv2.rectangle(out, (x0 + inset, y0 + inset), (x1 - 1 - inset, y1 - 1 - inset), col(_RETAKE if retake else _GOOD), 2)
    if lesion is not None and lesion.outline is not None:
        cv2.polylines(out, [lesion.outline.reshape(-1, 1, 2)], True, col(_OUTLINE), max(2, thick + 1), cv2.LINE_AA)
        if lesion.crop is not None:
            cv2.rectangle(out, lesion.crop[:2], (lesion.crop[2] - 1, lesion.crop[3] - 1), col(_OUTLINE), 1)

    if prediction is not None:
        lines: list[tuple[str, tuple[int, int, int]]] = []
        if retake or prediction.uncertain:
            lines.append((prediction.verdict, col(_RETAKE)))  # "retake: ...", "not a skin lesion", "uncertain"
        if numbers:
            for i, (label, p) in enumerate(prediction.top(3)):
                lines.append((f"{readable_label(label)} {p:.0%}", col(_WHITE if i == 0 and not retake else _GREY)))
        elif not lines:
            lines.append((readable_label(prediction.label), col(_WHITE)))
        width = max(cv2.getTextSize(t, _FONT, scale, thick)[0][0] for t, _ in lines) + 2 * pad
        _darken(out, 0, 0, width, pad + line * len(lines))
        for i, (t, c) in enumerate(lines):
            _text(out, t, (pad, pad + line * (i + 1) - line // 4), scale, c, thick)

        if prediction.risk is not None:
            bar_h = max(6, int(14 * scale))
            bx0, bx1 = pad, max(pad + 10, w // 2)
            by1 = h - pad - line
            by0 = by1 - bar_h
            _darken(out, 0, by0 - line, bx1 + pad, by1 + pad // 2)
            texts = prediction.risk_text
            shown = (texts[0] if texts else f"{prediction.risk:.0%}") if numbers else ""  # the page's figure
            _text(out, f"malignancy risk {shown}".strip(), (bx0, by0 - pad // 2), scale, col(_WHITE), thick)
            cv2.rectangle(out, (bx0, by0), (bx1, by1), col(_GREY), 1)
            filled = bx0 + int(round((bx1 - bx0) * min(max(prediction.risk, 0.0), 1.0)))
            colour = _RISK_HIGH if prediction.flagged else _RISK_LOW
            if filled > bx0:
                cv2.rectangle(out, (bx0, by0), (filled, by1), col(colour), -1)
            if risk_threshold is not None:
                tx = bx0 + int(round((bx1 - bx0) * risk_threshold))
                cv2.line(out, (tx, by0 - 3), (tx, by1 + 3), col(_WHITE), 1)

    if fps is not None:
        text = f"{fps:.1f} FPS"
        tw = cv2.getTextSize(text, _FONT, scale, thick)[0][0]
        _darken(out, w - tw - 2 * pad, 0, w, line + pad)
        _text(out, text, (w - tw - pad, line), scale, col(_WHITE), thick)

    (tw, _), _ = cv2.getTextSize(NOT_A_DIAGNOSIS, _FONT, scale, thick)
    _darken(out, 0, h - line - pad, tw + 2 * pad, h)
    _text(out, NOT_A_DIAGNOSIS, (pad, h - pad), scale, col(_WHITE), thick)
    return out
