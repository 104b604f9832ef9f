"""The one preprocessing function, shared by training, the representative dataset, evaluation and
the edge runner. NumPy + OpenCV only: importable without TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.contract import ModelContract

__all__ = ["IMAGE_SUFFIXES", "ImageError", "center_box", "decode_image", "load_image", "preprocess"]

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


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to RGB uint8 HWC; the content decides, not the name."""
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if bgr is None or bgr.size == 0:
        raise ImageError(f"{name}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def center_box(height: int, width: int, crop_fraction: float = 1.0) -> tuple[int, int, int, int]:
    """The centred square (x0, y0, x1, y1) of side ``crop_fraction`` x the short side."""
    side = max(1, round(min(height, width) * crop_fraction))
    y0 = (height - side) // 2
    x0 = (width - side) // 2
    return x0, y0, x0 + side, y0 + side


def preprocess(image: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Turn an RGB uint8 HWC image of any size into the model input.

    Crops the centred square of ``contract.crop_fraction`` of the short side, resizes it to
    ``contract.image_size`` with the contract's interpolation and returns RGB uint8 HWC. Pure and
    deterministic; pixel scaling to the network range happens inside the model graph.
    """
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
    interp = _INTERPOLATION[contract.interpolation]
    if interp == cv2.INTER_AREA and crop.shape[0] < size:
        interp = cv2.INTER_LINEAR  # INTER_AREA upsamples like nearest; linear is smoother
    return cv2.resize(crop, (size, size), interpolation=interp)
