"""Uploaded photos: checked before decoding, decoded by content, and saved only when asked to.

A 10 MB PNG can hold a billion pixels (a decompression bomb that would take a Pi's memory), so the
format and the claimed pixel count are read from the file header first: a JPEG is decoded at 1/2, 1/4
or 1/8 scale (libjpeg's reduced decoding) until it holds at most :data:`DECODE_PIXELS`, any other format
must fit :data:`DECODE_PIXELS` as it is. The header is only a hint: a file can claim one size and decode
to another, and progressive JPEGs need far more memory than their output, so the kiosk decodes in a
child process with a memory ceiling and a deadline (:class:`edge.kiosk.decoder.BoundedDecoder`), and
:class:`DecodeGate` lets one upload decode at a time with a short queue, answering "busy" beyond it.
The file name and the declared content type are never trusted.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edge.image.preprocess import ImageError, decode_image
from edge.kiosk.decoder import BoundedDecoder, DecodeRefused
from edge.model.modelfile import write_atomic

__all__ = [
    "DECODE_PIXELS",
    "FORMATS",
    "MAX_PIXELS",
    "DecodeGate",
    "KioskBusy",
    "Recorder",
    "UploadError",
    "image_header",
    "read_upload",
]

log = logging.getLogger(__name__)

FORMATS = ("JPEG", "PNG", "WebP", "BMP", "TIFF")
MAX_PIXELS = 40_000_000  # the largest JPEG taken (decoded at a reduced scale); more is refused
DECODE_PIXELS = 8_000_000  # at most this many pixels are decoded (24 MB of RGB): any other format is refused above
_JPEG_SCALES = (1, 2, 4, 8)  # libjpeg decodes at these fractions of the size
_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WebP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class UploadError(ValueError):
    """An uploaded file is empty, not an image, or too large to decode; the message is for people."""


class KioskBusy(RuntimeError):
    """Too many uploads are waiting to be decoded; the message is for people."""


class DecodeGate:
    """One upload decodes and classifies at a time; ``queue`` more may wait, the rest are refused.

    Args:
        queue: uploads that may wait for their turn.
        wait_s: how long one waits before it is refused all the same.
    """

    def __init__(self, queue: int = 4, wait_s: float = 20.0) -> None:
        self._turn = threading.Lock()
        self._count = threading.Lock()
        self._waiting = 0
        self.queue, self.wait_s = queue, wait_s

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the decoder; raises :class:`KioskBusy` when the queue is full or the wait runs out."""
        with self._count:
            if self._waiting > self.queue:  # one decoding + ``queue`` waiting
                raise KioskBusy("The kiosk is busy checking other photos; try again in a moment.")
            self._waiting += 1
        try:
            if not self._turn.acquire(timeout=self.wait_s):
                raise KioskBusy("The kiosk is busy checking other photos; try again in a moment.")
            try:
                yield
            finally:
                self._turn.release()
        finally:
            with self._count:
                self._waiting -= 1


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in _JPEG_SOF and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (entries,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for n in range(entries):
        at = ifd + 2 + 12 * n
        if at + 12 > len(data):
            break
        tag, kind = struct.unpack(order + "HH", data[at : at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            fmt = order + ("H" if kind == 3 else "I")
            found[tag] = struct.unpack(fmt, data[at + 8 : at + 8 + struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def image_header(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header of a JPEG, PNG, WebP, BMP or TIFF; None otherwise."""
    try:
        if data[:3] == b"\xff\xd8\xff":
            size = _jpeg_size(data)
            return ("JPEG", *size) if size else None
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return ("PNG", *struct.unpack(">II", data[16:24]))
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            size = _webp_size(data)
            return ("WebP", *size) if size else None
        if data[:2] == b"BM" and len(data) >= 26:
            (dib,) = struct.unpack("<I", data[14:18])
            if dib == 12:
                return ("BMP", *struct.unpack("<HH", data[18:22]))
            width, height = struct.unpack("<ii", data[18:26])
            return "BMP", abs(width), abs(height)
        if data[:4] in (b"II*\0", b"MM\0*"):
            size = _tiff_size(data)
            return ("TIFF", *size) if size else None
    except struct.error:  # a header cut short
        return None
    return None


def _reduction(fmt: str, width: int, height: int, budget: int) -> int:
    """The smallest JPEG scale denominator (1, 2, 4, 8) that brings the decode within ``budget`` pixels;
    0 when none does (or the format cannot be decoded reduced)."""
    for factor in _JPEG_SCALES if fmt == "JPEG" else (1,):
        if -(-width // factor) * -(-height // factor) <= budget:
            return factor
    return 0


def read_upload(
    data: bytes,
    max_pixels: int = MAX_PIXELS,
    decode_pixels: int = DECODE_PIXELS,
    decoder: BoundedDecoder | None = None,
) -> tuple[str, np.ndarray]:
    """Check and decode an uploaded photo; returns (format, RGB uint8 HWC image).

    A large JPEG comes back at 1/2, 1/4 or 1/8 of its size (at most ``decode_pixels``): still several
    times the model's input, which is all the kiosk keeps of it. With a ``decoder`` the decoding runs in
    its bounded child process (and comes back shrunk to its ``max_side``); without one, in this process.

    Raises:
        UploadError: empty, not one of :data:`FORMATS`, over ``max_pixels`` (over ``decode_pixels``
            for a format other than JPEG), or does not decode.
    """
    if not data:
        raise UploadError("No photo was sent: choose a photo file first.")
    header = image_header(data)
    if header is None:
        kinds = ", ".join(FORMATS[:-1]) + " or " + FORMATS[-1]
        raise UploadError(f"That file is not a photo the kiosk can read ({kinds}).")
    fmt, width, height = header
    factor = _reduction(fmt, width, height, decode_pixels) if width * height <= max_pixels else 0
    if not factor:
        limit = max_pixels if fmt == "JPEG" else decode_pixels
        raise UploadError(
            f"That photo is {width}x{height} pixels; the kiosk reads at most {limit / 1_000_000:g} "
            f"megapixels{'' if fmt == 'JPEG' else ' in a ' + fmt}. Send a smaller photo (or a JPEG)."
        )
    try:
        image = decoder.decode(data, factor) if decoder else decode_image(data, name="upload", reduce=factor)
    except DecodeRefused as exc:
        raise UploadError(str(exc)) from None
    except ImageError:
        raise UploadError(f"That file looks like a {fmt} but does not decode; it may be damaged.") from None
    return fmt, image


class Recorder:
    """Saves captures and uploads (image + prediction JSON) in a folder the operator chose.

    Without a recorder nothing is written to disk. Files are private to the service user (0600).

    Raises:
        OSError: (on creation) the folder cannot be created or is not writable.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create the record folder {self.folder}: {exc.strerror or exc}") from exc
        if not os.access(self.folder, os.W_OK):
            raise PermissionError(f"cannot write to the record folder {self.folder}")

    def save(self, kind: str, record_id: str, image: bytes, fmt: str, prediction: dict[str, Any]) -> Path:
        """Write ``<time>-<kind>-<id>.<ext>`` and its ``.json``; returns the image path."""
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{kind}-{record_id}"
        # patient images: readable by the service user only
        path = write_atomic(self.folder / (stem + _SUFFIX.get(fmt, ".bin")), image, mode=0o600)
        write_atomic(self.folder / (stem + ".json"), (json.dumps(prediction, indent=2) + "\n").encode(), mode=0o600)
        log.info("recorded %s %s in %s", kind, record_id, self.folder)
        return path
