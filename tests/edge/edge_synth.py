"""Synthetic frames and videos for the edge tests: a lesion-like image and a numbered video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_lesion(
    height: int = 480, width: int = 640, seed: int = 0, center: tuple[float, float] = (0.5, 0.5)
) -> np.ndarray:
    """RGB uint8: textured skin with a darker brown, soft-edged oval 'lesion' at ``center`` (fractions)."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (214, 162, 140)
    texture = cv2.GaussianBlur(rng.normal(0, 14, (height, width)).astype(np.float32), (0, 0), 1.2)
    img += texture[..., None]
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    r = min(height, width) * 0.2
    cy, cx = center[0] * height, center[1] * width
    dist = ((yy - cy) / (r * 0.8)) ** 2 + ((xx - cx) / r) ** 2
    blob = np.clip(1.3 - dist, 0, 1)[..., None]
    img = img * (1 - blob) + blob * (np.array([110, 70, 55], np.float32) + texture[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: Path, n: int = 12, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """Write an MJPG .avi of ``n`` lesion frames; frame i carries a grey marker ``marker(i, n)`` top-left."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "this OpenCV cannot write MJPG .avi"
    base = make_lesion(size[1], size[0])
    for i in range(n):
        frame = base.copy()
        frame[:16, :16] = marker(i, n)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def marker(i: int, n: int) -> int:
    return round(i * 255 / max(1, n - 1))


def read_marker(image: np.ndarray) -> float:
    """The marker of a decoded frame (centre of the 16x16 corner patch, away from JPEG edges)."""
    return float(image[4:12, 4:12].mean())
