"""The frame format and the source protocol every input (camera, video, files) follows.

A source is a context manager iterating :class:`Frame` objects (RGB uint8 HWC + timestamp + origin),
so the pipeline cannot tell a camera from a video file. Concrete sources live in ``edge.capture.sources``
(files, videos), ``edge.capture.cameras`` (OpenCV and Pi cameras) and ``edge.capture.background`` (the capture thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["CameraError", "Frame", "Skipped", "Source", "SourceError"]

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source cannot be opened or read."""


class CameraError(SourceError):
    """No camera, or the camera was lost and did not come back."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One image from a source.

    Attributes:
        image: RGB uint8 HWC pixels.
        timestamp: wall-clock seconds (``time.time()``) when the frame was captured or read.
        origin: the file it came from, or ``"camera:N"``.
        index: position in the source: the frame number of a video or camera, the ordinal of a file.
    """

    image: np.ndarray
    timestamp: float
    origin: str
    index: int


@dataclass(frozen=True)
class Skipped:
    """A file or frame a source passed over, and why."""

    origin: str
    reason: str


class Source:
    """Base class: a context manager iterating frames.

    Attributes:
        live: frames come from a camera (the newest frame matters, old ones may be dropped).
        sequential: consecutive frames show one scene (camera, video), so smoothing across them makes sense.
        skipped: files or frames passed over, with the reason.
    """

    live = False
    sequential = False

    def __init__(self) -> None:
        self.skipped: list[Skipped] = []
        self._stop = threading.Event()

    def open(self) -> None:
        """Acquire the device or file; raise a :class:`SourceError` or ``FileNotFoundError`` if unusable."""

    def _release(self) -> None:
        """Free the device or file; may be called more than once."""

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def request_stop(self) -> None:
        """Ask a running iteration to end soon (thread-safe); :meth:`close` still releases."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self._release()

    def skip(self, origin: str, reason: str) -> None:
        self.skipped.append(Skipped(origin, reason))
        log.warning("skipped %s: %s", origin, reason)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
