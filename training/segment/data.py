"""Read lesion segmentation datasets (images + binary masks) and split them without leaks.

Two layouts, told apart by the file names:

* PH2 style: ``images/<id>.jpg`` with ``masks/<id>.png`` (lesion = white);
* ISIC 2018 Task 1 naming: ``<id>.jpg`` with ``<id>_segmentation.png``, either beside the image
  or in a masks folder (``masks/``, or any sibling folder named like ``*GroundTruth*``, ``*mask*``
  or ``*segmentation*``, as in ``ISIC2018_Task1_Training_GroundTruth/``).

Images and masks go through the shared edge geometry (``edge.image.preprocess.preprocess`` and
``preprocess_mask``), so training sees exactly what the kiosk's segmenter sees.
"""

from __future__ import annotations

import csv
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.datasets import DatasetError, Sample
from edge.image.preprocess import IMAGE_SUFFIXES, ImageError, load_image, preprocess, preprocess_mask
from edge.model.contract import ModelContract
from training.splits import LoadedImages, duplicate_groups, split_indices, thumbnail_descriptor

__all__ = ["MaskPair", "SegmentationData", "find_mask_pairs", "load_mask", "load_segmentation_data", "split_pairs"]

log = logging.getLogger(__name__)

_MASK_SUFFIXES = ("_segmentation", "_mask", "_lesion", "")
_MASK_DIR_WORDS = ("mask", "groundtruth", "ground_truth", "segmentation")


@dataclass(frozen=True)
class MaskPair:
    image: Path
    mask: Path
    stratum: str = ""  # e.g. the PH2 diagnosis; keeps the split balanced across kinds of lesion


@dataclass
class SegmentationData:
    """Preprocessed images (N, S, S, 3) uint8 and masks (N, S, S) uint8 0/1 with their pairs."""

    images: np.ndarray
    masks: np.ndarray
    pairs: list[MaskPair]
    md5: list[str]
    skipped: list[tuple[str, str]]  # (path, reason)

    def subset(self, index: np.ndarray) -> SegmentationData:
        return SegmentationData(
            self.images[index], self.masks[index], [self.pairs[i] for i in index], [self.md5[i] for i in index], []
        )


def load_mask(path: str | Path) -> np.ndarray:
    """Read a mask image as HxW uint8 0/1 (any nonzero grey level, e.g. white, is lesion).

    Raises:
        ImageError: the file is missing or not a readable image.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None or data.size == 0:
        raise ImageError(f"{path}: no such mask file")
    mask = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ImageError(f"{path}: not a readable mask image")
    return (mask > 127).astype(np.uint8)


def _is_mask_dir(path: Path) -> bool:
    name = path.name.lower().replace("-", "_")
    return any(word in name for word in _MASK_DIR_WORDS)


def _image_dirs(root: Path) -> list[Path]:
    if (root / "images").is_dir():
        return [root / "images"]
    inputs = [d for d in sorted(root.iterdir()) if d.is_dir() and "input" in d.name.lower()]
    return inputs or [root]


def _mask_dirs(root: Path, image_dir: Path) -> list[Path]:
    dirs = [image_dir]
    for parent in dict.fromkeys((root, image_dir.parent)):  # the image folder's siblings too (ISIC)
        dirs += [d for d in sorted(parent.iterdir()) if d.is_dir() and _is_mask_dir(d) and d not in dirs]
    return dirs


def _is_mask_name(stem: str) -> bool:
    return any(stem.lower().endswith(s) for s in _MASK_SUFFIXES if s)


def _strata(root: Path) -> dict[str, str]:
    """image id -> diagnosis from a ``labels.csv`` (PH2: image_id, diagnosis), when there is one."""
    path = root / "labels.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"image_id", "diagnosis"} <= set(rows[0]):
        return {}
    return {r["image_id"]: r["diagnosis"] for r in rows}


def find_mask_pairs(root: str | Path) -> list[MaskPair]:
    """Every image under ``root`` that has a mask, in either supported layout.

    Raises:
        DatasetError: ``root`` is missing, or no image has a mask.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"segmentation data folder {root} does not exist")
    strata = _strata(root)
    pairs, missing = [], 0
    for image_dir in _image_dirs(root):
        mask_dirs = _mask_dirs(root, image_dir)
        for path in sorted(image_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or _is_mask_name(path.stem) or not path.is_file():
                continue
            mask = _find_mask(path, mask_dirs)
            if mask is None:
                missing += 1
                continue
            pairs.append(MaskPair(path, mask, strata.get(path.stem, "")))
    if missing:
        log.warning("%d images in %s have no mask and are left out", missing, root)
    if not pairs:
        raise DatasetError(
            f"no image with a mask in {root}: expected images/<id>.jpg with masks/<id>.png, "
            "or <id>.jpg with <id>_segmentation.png beside it or in a masks folder"
        )
    return pairs


def _find_mask(image: Path, mask_dirs: list[Path]) -> Path | None:
    for folder in mask_dirs:
        for suffix in _MASK_SUFFIXES:
            if folder == image.parent and not suffix:
                continue  # the image itself
            for ext in (".png", ".bmp", ".gif", ".tif"):
                candidate = folder / f"{image.stem}{suffix}{ext}"
                if candidate.is_file():
                    return candidate
    return None


def _load_pair(pair: MaskPair, contract: ModelContract) -> tuple[np.ndarray | None, np.ndarray | None, str, str]:
    import hashlib

    try:
        raw = pair.image.read_bytes()
        image = load_image(pair.image)
        mask = load_mask(pair.mask)
    except (ImageError, OSError) as exc:
        return None, None, "", str(exc)
    if mask.shape != image.shape[:2]:
        (mh, mw), (ih, iw) = mask.shape, image.shape[:2]
        return None, None, "", f"{pair.mask}: the mask is {mw}x{mh} pixels but its image {iw}x{ih}"
    return preprocess(image, contract), preprocess_mask(mask, contract), hashlib.md5(raw).hexdigest(), ""


def load_segmentation_data(pairs: list[MaskPair], contract: ModelContract, workers: int = 4) -> SegmentationData:
    """Decode and preprocess every pair with the shared edge geometry; skip unreadable ones."""
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: _load_pair(p, contract), pairs))
    keep = [i for i, r in enumerate(results) if r[0] is not None]
    skipped = [(str(pairs[i].image), results[i][3]) for i, r in enumerate(results) if r[0] is None]
    for _, why in skipped:
        log.warning("skipped %s", why)
    size = contract.image_size
    images = np.stack([results[i][0] for i in keep]) if keep else np.zeros((0, size, size, 3), np.uint8)
    masks = np.stack([results[i][1] for i in keep]) if keep else np.zeros((0, size, size), np.uint8)
    return SegmentationData(images, masks, [pairs[i] for i in keep], [results[i][2] for i in keep], skipped)


def split_pairs(data: SegmentationData, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of indices in which identical and near-duplicate images stay on one side.

    Stratified by the dataset's diagnosis when it has one (PH2's ``labels.csv``).
    """
    samples = [Sample(p.image, p.stratum or "lesion") for p in data.pairs]
    desc = np.stack([thumbnail_descriptor(im) for im in data.images]) if len(data.images) else np.zeros((0, 768))
    groups = duplicate_groups(LoadedImages(data.images, samples, data.md5, desc, []))
    names = sorted({s.label for s in samples})
    strata = np.array([names.index(s.label) for s in samples])
    if np.bincount(strata).min() < round(1 / val_fraction):  # too few of a kind to stratify
        strata = np.zeros(len(samples), int)
    train_idx, val_idx = split_indices(strata, groups, val_fraction, seed)
    assert not set(groups[train_idx]) & set(groups[val_idx]), "a duplicate group straddles the split"
    log.info(
        "split: %d train / %d validation images; %d near-duplicate groups kept together",
        len(train_idx), len(val_idx), int((np.bincount(groups) > 1).sum()),
    )  # fmt: skip
    return train_idx, val_idx
