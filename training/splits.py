"""Decode a dataset once and split it without leaks.

Images of one lesion (``lesion_id``), byte-identical files and near-duplicates (the same lesion
shot twice: colour thumbnails that correlate above a threshold) are joined into one group, and a
stratified group split keeps every group on one side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.datasets import DatasetError, Sample
from edge.image.preprocess import ImageError, correct_color, crop_and_resize, load_image
from edge.model.contract import ModelContract
from training.pipeline import ImageRows, cache_key

__all__ = [
    "held_out_but_trained",
    "leaks_into",
    "LoadedImages",
    "thumbnail_descriptor",
    "duplicate_groups",
    "fingerprint",
    "load_images",
    "split_indices",
]

log = logging.getLogger(__name__)

# Cosine similarity of dataset-centred 16x16 colour thumbnails of the central 60 % above which two images
# count as the same lesion. Centring removes what all dermoscopy shares (a dark blob in the middle); the
# border (a dermatoscope's black ring) is left out. Chosen by looking at pairs: on isic9 pairs above
# 0.93 were mostly the same lesion; HAM10000 (one image per lesion) has 20 pairs of 12 million above it.
NEAR_DUPLICATE_SIMILARITY = 0.93
# Only mutual nearest neighbours join (each among the other's few most similar images): on ISIC 2019's
# 25,000 images, joining every similar pair chained featureless images into one group of ~9,900 images,
# which then fell whole on one side of the split.
MUTUAL_NEIGHBOURS = 3
# Descriptors are taken from this view of every image whatever the model's input, so runs at 128 and
# 224 px (a second stage started from the first) group and split the same images the same way.
DESCRIPTOR_VIEW = {"image_size": 128, "crop_fraction": 1.0, "interpolation": "area"}


@dataclass
class LoadedImages:
    """Preprocessed images (N, S, S, 3) uint8 with their samples, hashes and what was skipped."""

    images: np.ndarray | ImageRows  # ImageRows: rows of the on-disk cache, read on demand
    samples: list[Sample]
    md5: list[str]
    descriptors: np.ndarray  # (N, 768) unit-norm colour thumbnails
    skipped: list[tuple[str, str]]  # (path, reason)

    def subset(self, index: np.ndarray) -> LoadedImages:
        return LoadedImages(
            self.images.rows(index) if isinstance(self.images, ImageRows) else self.images[index],
            [self.samples[i] for i in index],
            [self.md5[i] for i in index],
            self.descriptors[index],
            [],
        )


def thumbnail_descriptor(image: np.ndarray, side: int = 16, border: float = 0.2) -> np.ndarray:
    """A zero-mean, unit-norm 16x16 colour thumbnail of the image less ``border`` of each side:
    near-duplicate images have cosine ~1."""
    h, w = image.shape[:2]
    dy, dx = int(h * border), int(w * border)
    centre = image[dy : h - dy, dx : w - dx]
    thumb = cv2.resize(centre, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    thumb -= thumb.mean()
    return thumb / (np.linalg.norm(thumb) + 1e-6)


def held_out_but_trained(split: dict[str, list[str]], earlier: dict[str, list[str]]) -> list[str]:
    """The images ``split`` holds out (validation and test) that ``earlier`` (another run's split) trained on:
    a run that starts from that run's backbone would be scored on images the backbone has seen."""
    trained = set(earlier.get("train", ()))
    return [path for part in ("validation", "test") for path in split.get(part, ()) if path in trained]


def _load_one(sample: Sample, contract: ModelContract) -> tuple[np.ndarray | None, np.ndarray | None, str, str]:
    """(model input, thumbnail descriptor, md5, why skipped); the descriptor ignores colour
    constancy and the input size, so near-duplicate groups and the split depend on neither."""
    try:
        raw = sample.path.read_bytes()
        image = load_image(sample.path)
    except (ImageError, OSError) as exc:
        return None, None, "", str(exc)
    geometric = crop_and_resize(image, contract)
    view = contract.replace(**DESCRIPTOR_VIEW)
    seen = geometric if view == contract else crop_and_resize(image, view)
    return correct_color(geometric, contract), thumbnail_descriptor(seen), hashlib.md5(raw).hexdigest(), ""


def load_images(
    samples: list[Sample] | tuple[Sample, ...],
    contract: ModelContract,
    workers: int = 4,
    cache: Path | None = None,
) -> LoadedImages:
    """Decode and preprocess every sample with the shared edge preprocessing; skip unreadable ones.

    Args:
        cache: a folder: keep the preprocessed images there in a memory-mapped file (reused while the
            files and the preprocessing stay the same) and return them as ``ImageRows`` that read
            rows on demand. None: return them as one array in memory.

    Raises:
        DatasetError: the cache cannot be written (e.g. the disk is full).
    """
    if cache is None:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda s: _load_one(s, contract), samples))
        keep = [i for i, r in enumerate(results) if r[0] is not None]
        size = contract.image_size
        images = np.stack([results[i][0] for i in keep]) if keep else np.zeros((0, size, size, 3), np.uint8)
        meta = [(r[1], r[2], r[3]) for r in results]
        rows: np.ndarray | ImageRows = images
    else:
        rows, meta, keep = _cached_images(samples, contract, workers, Path(cache))
    skipped = [(str(samples[i].path), meta[i][2]) for i in range(len(samples)) if meta[i][2]]
    for path, why in skipped:
        log.warning("skipped %s", why or path)
    desc = np.stack([meta[i][0] for i in keep]) if keep else np.zeros((0, 768), np.float32)
    return LoadedImages(rows, [samples[i] for i in keep], [meta[i][1] for i in keep], desc, skipped)


def _cached_images(
    samples: list[Sample] | tuple[Sample, ...], contract: ModelContract, workers: int, folder: Path
) -> tuple[ImageRows, list[tuple[np.ndarray | None, str, str]], list[int]]:
    """(rows of the cache, (descriptor, md5, why skipped) per sample, kept sample indices)."""
    key = cache_key([s.path for s in samples], contract)
    images_file, meta_file = folder / f"{key}.npy", folder / f"{key}.meta.json"
    if not meta_file.is_file():  # written last
        _write_cache(samples, contract, workers, images_file, meta_file)
    else:
        log.info("reading %d preprocessed images from the cache %s", len(samples), images_file)
    mapped = np.load(images_file, mmap_mode="r")
    stored = json.loads(meta_file.read_text())
    desc = np.load(folder / f"{key}.desc.npy")
    meta = [(desc[i], m, why) for i, (m, why) in enumerate(zip(stored["md5"], stored["skipped"]))]
    keep = [i for i, why in enumerate(stored["skipped"]) if not why]
    return ImageRows([(mapped, np.array(keep, dtype=np.int64))]), meta, keep


def _write_cache(
    samples: list[Sample] | tuple[Sample, ...],
    contract: ModelContract,
    workers: int,
    images_file: Path,
    meta_file: Path,
) -> None:
    """Preprocess every sample in parallel straight into a memory-mapped file; rename it into place when done."""
    size, n = contract.image_size, len(samples)
    images_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = images_file.with_name(f"{images_file.stem}.tmp{os.getpid()}.npy")
    need = n * size * size * 3
    try:
        mapped = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        with open(tmp, "r+b") as fh:  # reserve the space now: a full disk is an error here, not a crash later
            os.posix_fallocate(fh.fileno(), 0, os.path.getsize(tmp))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(
            f"cannot cache {n} preprocessed images ({need / 1e9:.1f} GB) in {images_file.parent}: "
            f"{exc.strerror or exc}; free some space or point SKINEDGE_CACHE at another disk"
        ) from None
    log.info("preprocessing %d images once into the cache %s (%.1f GB)", n, images_file, need / 1e9)
    started, last = time.monotonic(), [time.monotonic()]
    done = [0]

    def one(i: int) -> tuple[np.ndarray, str, str]:
        image, desc, md5, why = _load_one(samples[i], contract)
        if image is not None:
            mapped[i] = image
        done[0] += 1
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            rate = done[0] / (last[0] - started)
            log.info("preprocessed %d of %d images (%.0f/s, %.0f s left)", done[0], n, rate, (n - done[0]) / rate)
        return (desc if desc is not None else np.zeros(768, np.float32)), md5, why

    try:
        with ThreadPoolExecutor(workers) as pool:
            meta = list(pool.map(one, range(n)))
        mapped.flush()
        descriptors = np.stack([m[0] for m in meta]) if meta else np.zeros((0, 768), np.float32)
        # every file goes in by rename, the list last: another process (a second worker on this
        # machine) building the same entry at once never reads a half-written file
        desc_tmp = images_file.with_name(f"{images_file.stem}.desc.tmp{os.getpid()}.npy")
        np.save(desc_tmp, descriptors)
        os.replace(desc_tmp, images_file.with_name(f"{images_file.stem}.desc.npy"))
        os.replace(tmp, images_file)
        meta_tmp = meta_file.with_name(f"{meta_file.name}.tmp{os.getpid()}")
        meta_tmp.write_text(json.dumps({"md5": [m[1] for m in meta], "skipped": [m[2] for m in meta]}))
        os.replace(meta_tmp, meta_file)
    except BaseException:
        for leftover in images_file.parent.glob(f"{images_file.stem}.*tmp{os.getpid()}*"):
            leftover.unlink(missing_ok=True)
        raise


def duplicate_groups(loaded: LoadedImages, min_similarity: float = NEAR_DUPLICATE_SIMILARITY) -> np.ndarray:
    """A group id per image: same lesion id, same bytes, or thumbnails at least this similar that are
    mutual nearest neighbours."""
    n = len(loaded.samples)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)

    first: dict[str, int] = {}
    for i, s in enumerate(loaded.samples):
        for key in (
            f"g:{s.group}" if s.group else None,
            f"i:{s.image_id}" if s.image_id else None,
            f"m:{loaded.md5[i]}",
        ):
            if key is None:
                continue
            if key in first:
                union(first[key], i)
            else:
                first[key] = i
    for i, j in _similar_pairs(loaded.descriptors, min_similarity):
        union(i, j)
    return np.array([find(i) for i in range(n)])


def _similar_pairs(descriptors: np.ndarray, min_similarity: float, k: int = MUTUAL_NEIGHBOURS) -> list[tuple[int, int]]:
    """Pairs (i < j) at least this similar that are each among the other's k most similar images."""
    n = len(descriptors)
    if n < 2:
        return []
    d = descriptors - descriptors.mean(axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-6
    k = min(k, n - 1)
    top = np.zeros((n, k), dtype=np.int64)
    for start in range(0, n, 1024):
        sims = d[start : start + 1024] @ d.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf  # not oneself
        near = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near_sims = np.take_along_axis(sims, near, axis=1)
        top[start : start + 1024] = np.where(near_sims >= min_similarity, near, -1)
    neighbours = [set(row[row >= 0].tolist()) for row in top]
    return [(i, j) for i in range(n) for j in neighbours[i] if i < j and i in neighbours[j]]


def leaks_into(
    extra: LoadedImages, held_out: LoadedImages, min_similarity: float = NEAR_DUPLICATE_SIMILARITY
) -> np.ndarray:
    """A mask over ``extra``: images that are (near-)copies of a held-out image and must not train.

    Matches by ISIC image id, lesion id, identical bytes, or thumbnail similarity; other images
    of a lesion one of those shows go too.
    """
    ids = {s.image_id for s in held_out.samples if s.image_id}
    groups = {s.group for s in held_out.samples if s.group}
    md5 = set(held_out.md5)
    mask = np.array(
        [(s.image_id in ids) or (s.group in groups) or (m in md5) for s, m in zip(extra.samples, extra.md5)],
        dtype=bool,
    )
    if len(held_out.samples) and len(extra.samples):
        both = np.concatenate([extra.descriptors, held_out.descriptors])
        centre = both.mean(axis=0)
        a = extra.descriptors - centre
        b = held_out.descriptors - centre
        a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-6
        b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-6
        for start in range(0, len(a), 512):
            mask[start : start + 512] |= (a[start : start + 512] @ b.T >= min_similarity).any(axis=1)
    leaked_lesions = {s.group for s, m in zip(extra.samples, mask) if m and s.group}
    return mask | np.array([s.group in leaked_lesions for s in extra.samples], dtype=bool)


def split_indices(
    labels: np.ndarray, groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified split of indices in which no group straddles train and validation.

    ``val_fraction`` is met by joining k of n stratified group folds (0.2: 1 of 5, 0.4: 2 of 5,
    0.3: 3 of 10), the smallest n that comes within half a point of it.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 0.5:
        raise ValueError(f"validation fraction must be within (0, 0.5), got {val_fraction}")
    folds, take = fold_plan(val_fraction)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    parts = [val for _, val in splitter.split(np.zeros(len(labels)), labels, groups)]
    val_idx = np.sort(np.concatenate(parts[:take]))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def fold_plan(fraction: float, most: int = 20) -> tuple[int, int]:
    """(n folds, k of them) with k/n closest to ``fraction``: the fewest folds within half a point."""
    plans = [(n, max(1, round(fraction * n))) for n in range(2, most + 1)]
    close = [p for p in plans if abs(p[1] / p[0] - fraction) <= 0.005]
    return close[0] if close else min(plans, key=lambda p: abs(p[1] / p[0] - fraction))


def fingerprint(loaded: LoadedImages) -> str:
    """A short, order-independent digest of the training data (file contents and labels)."""
    digest = hashlib.sha256()
    for md5, sample in sorted(zip(loaded.md5, loaded.samples), key=lambda t: t[0]):
        digest.update(f"{md5}:{sample.label}\n".encode())
    return f"sha256:{digest.hexdigest()[:16]} ({len(loaded.samples)} images)"
