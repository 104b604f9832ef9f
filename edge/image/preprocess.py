"""The one preprocessing function, shared by training, the representative dataset, evaluation and
the edge runner. NumPy + OpenCV only: importable without TensorFlow.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from edge.model.contract import ModelContract

__all__ = [
    "IMAGE_SUFFIXES",
    "area_resize",
    "linear_resize",
    "ImageError",
    "center_box",
    "correct_color",
    "crop_and_resize",
    "decode_image",
    "load_image",
    "preprocess",
    "preprocess_mask",
    "shades_of_gray",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

_INTERPOLATION = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


class ImageError(ValueError):
    """An image file is missing, unreadable or not an image."""


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 HWC.

    Raises:
        ImageError: the file is missing or does not decode as an image.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise ImageError(f"{path}: no such file")
    return decode_image(data.tobytes(), name=str(path))


_REDUCED_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}
_REDUCED_FLAGS[8] = cv2.IMREAD_REDUCED_COLOR_8


def decode_image(data: bytes, name: str = "image", reduce: int = 1) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to RGB uint8 HWC; the content decides, not the name.

    ``reduce`` (1, 2, 4 or 8) decodes at that fraction of the size; a JPEG never holds the full size in
    memory then. The colour order is swapped in place: no second full-size copy.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if data[:8] == b"\x89PNG\r\n\x1a\n" or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return _without_alpha(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED), name)  # formats that carry transparency
    bgr = cv2.imdecode(buf, _REDUCED_FLAGS[reduce]) if buf.size else None
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)


def _without_alpha(decoded: np.ndarray | None, name: str) -> np.ndarray:
    """An 8-bit RGB image from a PNG/WebP decoded as it is: a transparent image is refused (its hidden
    colours are not what a person sees), a partly transparent one is put on white, 16 bits become 8."""
    if decoded is None or decoded.size == 0:
        raise ImageError(f"{name}: not a readable image")
    if decoded.dtype == np.uint16:
        decoded = (decoded >> 8).astype(np.uint8)
    if decoded.ndim == 2:
        return cv2.cvtColor(decoded, cv2.COLOR_GRAY2RGB)
    if decoded.shape[2] == 4:
        alpha = decoded[:, :, 3:].astype(np.float32) / 255.0
        if float(alpha.mean()) < 0.5:
            raise ImageError(f"{name}: the image is mostly transparent: nothing to classify")
        decoded = (decoded[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def center_box(height: int, width: int, crop_fraction: float = 1.0) -> tuple[int, int, int, int]:
    """The centred square (x0, y0, x1, y1) of side ``crop_fraction`` x the short side."""
    side = max(1, round(min(height, width) * crop_fraction))
    y0 = (height - side) // 2
    x0 = (width - side) // 2
    return x0, y0, x0 + side, y0 + side


def preprocess(image: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Turn an RGB uint8 HWC image of any size into the model input.

    :func:`crop_and_resize`, then the contract's colour constancy (``"shades_of_gray"`` or none).
    Returns RGB uint8 HWC. Pure and deterministic; pixel scaling to the network range happens
    inside the model graph.
    """
    return correct_color(crop_and_resize(image, contract), contract)


def crop_and_resize(image: np.ndarray, contract: ModelContract) -> np.ndarray:
    """The geometric half of :func:`preprocess`: the centred square of ``contract.crop_fraction`` of
    the short side, resized to ``contract.image_size`` with the contract's interpolation."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels, got {image.dtype}")
    x0, y0, x1, y1 = center_box(image.shape[0], image.shape[1], contract.crop_fraction)
    crop = image[y0:y1, x0:x1]
    size = contract.image_size
    if crop.shape[0] == size and crop.shape[1] == size:
        return np.ascontiguousarray(crop)
    if contract.interpolation == "area" and crop.shape[0] > size:
        return area_resize(crop, size)
    if contract.interpolation in ("area", "linear") and crop.shape[0] < size:
        return linear_resize(crop, size)  # upsampling: area would repeat pixels like nearest
    return cv2.resize(crop, (size, size), interpolation=_INTERPOLATION[contract.interpolation])


def area_resize(square: np.ndarray, size: int) -> np.ndarray:
    """Shrink a square uint8 image by area averaging in exact integer arithmetic.

    OpenCV's INTER_AREA sums float weights with each CPU's vector code, so x86 and ARM differ by one
    level on some pixels. Here every step is an integer sum: a photo over twice the size is first
    summed in k x k blocks (its centre trimmed to a multiple of k by under k pixels), then each
    output pixel takes the integer overlaps of the (at most three) source pixels it covers per axis,
    with one rounding at the end. The same bytes in give the same bytes out on every platform.
    """
    n = square.shape[0]
    k = max(1, n // size)
    side = n // k
    trim = (n - side * k) // 2
    total = k * k * side * side  # the weights of every output pixel sum to this
    dtype = np.int32 if 255 * total < 2**31 else np.int64
    crop = square[trim : trim + side * k, trim : trim + side * k]
    block = crop[0::k].astype(dtype)  # summed in place, row strips then columns: never the photo in int32
    for i in range(1, k):
        block += crop[i::k]
    if k > 1:
        rows, block = block, block[:, 0::k].copy()
        for j in range(1, k):
            block += rows[:, j::k]
    return _separable(block, *_area_taps(side, size), total)


def linear_resize(square: np.ndarray, size: int) -> np.ndarray:
    """Enlarge a square uint8 image bilinearly (pixel centres aligned, as OpenCV's INTER_LINEAR) in
    exact integer arithmetic, so that every platform gets the same bytes (OpenCV's vector code does not)."""
    total = (2 * size) ** 2  # the weights of every output pixel sum to this
    dtype = np.int32 if 255 * total < 2**31 else np.int64
    return _separable(square.astype(dtype), *_linear_taps(square.shape[0], size), total)


def _separable(block: np.ndarray, taps: np.ndarray, weights: np.ndarray, total: int) -> np.ndarray:
    """Integer weighted sums down the rows, then (transposed) down the columns; one rounding at the end."""
    weights = weights.astype(block.dtype)
    for _ in range(2):
        block = sum(w[:, None, None] * block[t] for t, w in zip(taps, weights)).swapaxes(0, 1)
    return np.ascontiguousarray(((block + total // 2) // total).astype(np.uint8))


@functools.lru_cache(maxsize=32)
def _linear_taps(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Enlarging n pixels to m: output i samples the source at ((2i + 1) n - m) / 2m; its two neighbours
    and their weights as integers out of 2m (clamped at the edges)."""
    position = (2 * np.arange(m) + 1) * n - m  # in units of 1/2m of a source pixel
    left = np.floor_divide(position, 2 * m)
    right_weight = position - left * 2 * m
    taps = np.stack([np.clip(left, 0, n - 1), np.clip(left + 1, 0, n - 1)])
    return taps, np.stack([2 * m - right_weight, right_weight])


@functools.lru_cache(maxsize=32)
def _area_taps(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrinking n pixels to m: for each tap, the source pixel each output pixel overlaps and the
    overlap as an integer (output i spans [i*n, (i+1)*n), source j spans [j*m, (j+1)*m))."""
    i = np.arange(m)
    first = (i * n) // m
    taps = np.stack([np.minimum(first + t, n - 1) for t in range(-(-n // m) + 1)])
    lo = np.maximum(i * n, taps * m)
    hi = np.minimum((i + 1) * n, (taps + 1) * m)
    weights = np.maximum(hi - lo, 0)
    weights[1:][taps[1:] == taps[:-1]] = 0  # a pixel clamped at the edge is counted once
    return taps, weights.astype(np.int64)


def correct_color(image: np.ndarray, contract: ModelContract) -> np.ndarray:
    """The colour half of :func:`preprocess`: the contract's colour constancy, or the image as it is."""
    return shades_of_gray(image) if contract.color_constancy == "shades_of_gray" else image


def shades_of_gray(image: np.ndarray, power: int = 6) -> np.ndarray:
    """Shades-of-gray colour constancy (Finlayson and Trezzi, 2004), as used for dermoscopy.

    Estimates the illuminant per channel as the ``power``-norm mean of its pixels and scales each
    channel so the illuminant becomes grey of the same Euclidean length: different dermatoscopes,
    cameras and lamps then hand the model more alike colours. RGB uint8 in and out.
    """
    hist = [cv2.calcHist([image], [c], None, [256], [0, 256]).ravel().astype(np.int64) for c in range(3)]
    # power sums in exact integers (a float dot product's order, and so its last bit, differs by CPU)
    sums = [sum(int(count) * level**power for level, count in enumerate(h) if count) for h in hist]
    illuminant = np.array([(total / max(int(h.sum()), 1)) ** (1.0 / power) / 255.0 for total, h in zip(sums, hist)])
    gain = np.sqrt(np.mean(illuminant**2)) / np.maximum(illuminant, 1e-6)
    fixed = np.round(gain * 65536).astype(np.int64)  # 16-bit fixed point: the table is integer arithmetic
    lut = np.clip((np.arange(256)[:, None] * fixed + 32768) >> 16, 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(image), lut[:, None, :])


def preprocess_mask(mask: np.ndarray, contract: ModelContract, size: int | None = None) -> np.ndarray:
    """Bring a binary mask into the model's frame: the same crop as :func:`preprocess`, then resize.

    The mask is cropped to the centred square exactly like its image and resized to ``size``
    (default ``contract.image_size``) by area averaging and a 0.5 threshold (a majority vote per
    output pixel, so thin borders neither grow nor vanish as with nearest-neighbour picking).

    Args:
        mask: HxW (or HxWx1) array; nonzero = lesion. Must match its image's height and width.
        contract: the model contract (crop fraction, image size).
        size: output side in pixels, e.g. the model's half-resolution output.

    Returns:
        ``size`` x ``size`` uint8 array of 0 and 1.
    """
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ImageError(f"expected an HxW mask, got shape {mask.shape}")
    x0, y0, x1, y1 = center_box(mask.shape[0], mask.shape[1], contract.crop_fraction)
    crop = (mask[y0:y1, x0:x1] > 0).astype(np.float32)
    size = size or contract.image_size
    if crop.shape[0] != size:
        interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (size, size), interpolation=interp)
    return (crop >= 0.5).astype(np.uint8)
