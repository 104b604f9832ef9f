"""Synthetic image/mask pairs for the segmentation tests, written in the PH2 and ISIC layouts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def lesion_pair(seed: int, height: int = 96, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, uint8 mask 0/255): textured skin with a dark oval lesion, and its mask."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (214, 162, 140) + rng.integers(-12, 12, 3)
    image += rng.normal(0, 8, (height, width, 1))
    mask = np.zeros((height, width), np.uint8)
    centre = (width // 2 + int(rng.integers(-10, 10)), height // 2 + int(rng.integers(-8, 8)))
    axes = (int(height * rng.uniform(0.15, 0.3)), int(height * rng.uniform(0.12, 0.25)))
    cv2.ellipse(mask, centre, axes, float(rng.integers(0, 180)), 0, 360, 255, -1)
    colour = np.array([100, 62, 48], np.float32) + rng.integers(-15, 15, 3)
    image[mask > 0] = colour + rng.normal(0, 8, (int((mask > 0).sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), data), path
    return path


def write_ph2_layout(root: Path, n: int = 6, seed: int = 0, **size: int) -> Path:
    """``images/IMDnnn.jpg`` + ``masks/IMDnnn.png`` (+ a labels.csv with a diagnosis per image)."""
    rows = ["image_id,diagnosis"]
    for i in range(n):
        image, mask = lesion_pair(seed + i, **size)
        _write(root / "images" / f"IMD{i:03d}.jpg", image)
        _write(root / "masks" / f"IMD{i:03d}.png", mask)
        rows.append(f"IMD{i:03d},{'melanoma' if i % 3 == 0 else 'common_nevus'}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def write_isic_layout(root: Path, n: int = 6, seed: int = 0, beside: bool = False, **size: int) -> Path:
    """ISIC 2018 Task 1 naming: ``ISIC_nnnnnnn.jpg`` with ``ISIC_nnnnnnn_segmentation.png``.

    ``beside=True`` puts the masks next to the images in ``root``; otherwise images go in
    ``root/ISIC2018_Task1-2_Training_Input`` and masks in ``root/ISIC2018_Task1_Training_GroundTruth``.
    """
    images = root if beside else root / "ISIC2018_Task1-2_Training_Input"
    masks = root if beside else root / "ISIC2018_Task1_Training_GroundTruth"
    for i in range(n):
        image, mask = lesion_pair(seed + i, **size)
        _write(images / f"ISIC_{i:07d}.jpg", image)
        _write(masks / f"ISIC_{i:07d}_segmentation.png", mask)
    return root
