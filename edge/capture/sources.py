"""Frame sources: image files, folders and globs, video files, an OpenCV camera and the Pi camera.

Every source is a context manager that iterates :class:`Frame` objects (RGB uint8 HWC), so the
pipeline cannot tell a camera from a video file. Hardware libraries (``picamera2``) are imported
only inside the source that needs them. :func:`open_source` picks the source from a path or from
camera options and wraps cameras and videos in a :class:`ThreadedCapture`, so capture overlaps
inference. This module is the public face: the camera and capture classes live in ``edge.capture.cameras``
and ``edge.capture.background`` and are re-exported here.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2

from edge.capture.background import ThreadedCapture
from edge.capture.cameras import OpenCVCamera, PiCamera, picamera_status
from edge.capture.frames import CameraError, Frame, Skipped, Source, SourceError
from edge.image.preprocess import IMAGE_SUFFIXES, ImageError, load_image

__all__ = [
    "VIDEO_SUFFIXES",
    "CameraError",
    "Frame",
    "ImageSource",
    "OpenCVCamera",
    "PiCamera",
    "Skipped",
    "Source",
    "SourceError",
    "ThreadedCapture",
    "VideoSource",
    "open_source",
    "picamera_status",
]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"})
_GLOB_CHARS = frozenset("*?[")


class ImageSource(Source):
    """Still images: one file, a folder (searched recursively, sorted) or a glob pattern.

    Files that are not images (by suffix, in folders) or do not decode are skipped, logged and
    recorded in :attr:`skipped`.

    Raises:
        FileNotFoundError: (on open) the path does not exist or the pattern matches nothing.
    """

    def __init__(self, spec: str | Path) -> None:
        super().__init__()
        self.spec = str(spec)
        self.paths: list[Path] = []

    def open(self) -> None:
        self.paths = _resolve_image_paths(self.spec)
        log.info("%d file(s) from %s", len(self.paths), self.spec)

    def frames(self) -> Iterator[Frame]:
        if not self.paths:
            self.open()
        for ordinal, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                self.skip(str(path), f"not an image file ({path.suffix or 'no suffix'})")
                continue
            try:
                image = load_image(path)
            except (ImageError, OSError) as exc:
                self.skip(str(path), str(exc).removeprefix(f"{path}: "))
                continue
            yield Frame(image, time.time(), str(path), ordinal)

    def __repr__(self) -> str:
        return f"ImageSource({self.spec!r})"


def _resolve_image_paths(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))]
        if not found:
            raise FileNotFoundError(f"folder {path} holds no files")
        return sorted(found)
    if _GLOB_CHARS & set(spec):
        found = [Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()]
        if not found:
            raise FileNotFoundError(f"no files match {spec}")
        return sorted(found)
    raise FileNotFoundError(f"{spec} does not exist")


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


class VideoSource(Source):
    """Every frame of a video file, in order. Unreadable frames are skipped and recorded.

    With ``realtime=True`` frames are paced at the file's frame rate and the source counts as live
    (behind a :class:`ThreadedCapture` the newest frame wins, like a camera): a stand-in for a camera.
    With ``loop=True`` it starts again from the first frame at the end, until stopped.

    Raises:
        FileNotFoundError: (on open) no such file.
        SourceError: (on open) OpenCV cannot decode it.
    """

    sequential = True
    max_bad_frames = 25  # this many unreadable frames in a row end the video

    def __init__(
        self,
        path: str | Path,
        realtime: bool = False,
        capture_factory: Callable[..., Any] = cv2.VideoCapture,
        loop: bool = False,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.loop = loop
        self.live = realtime  # paced at the file's frame rate, as if it were a camera
        self._factory = capture_factory
        self._cap: Any = None
        self.frame_count = 0
        self.fps = 0.0

    def open(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"video {self.path} does not exist")
        cap = self._factory(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {self.path}: not a video format this OpenCV can decode")
        self._cap = cap
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        log.info("video %s: %d frames at %.1f fps", self.path, self.frame_count, self.fps)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        while True:
            played = 0
            for frame in self._play_once():
                played += 1
                yield frame
            if not self.loop or not played or self._stop.is_set() or self._cap is None:
                return
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)

    def _play_once(self) -> Iterator[Frame]:
        start = time.monotonic()
        index, pending = 0, []  # unreadable frames count as skipped once a later frame reads
        while not self._stop.is_set() and self._cap is not None:
            ok, bgr = self._cap.read()
            if ok and bgr is not None and bgr.size:
                if self.live and self.fps > 0:
                    lag = start + index / self.fps - time.monotonic()
                    if lag > 0 and self._stop.wait(lag):
                        return
                for where in pending:
                    self.skip(where, "unreadable frame")
                pending.clear()
                yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.time(), str(self.path), index)
            elif not self.frame_count or index >= self.frame_count or len(pending) >= self.max_bad_frames:
                if pending:
                    log.debug("%s ended %d frame(s) before its header said", self.path, len(pending))
                return
            else:
                pending.append(f"{self.path}#{index}")
            index += 1

    def __repr__(self) -> str:
        return f"VideoSource({str(self.path)!r})"


def open_source(
    source: str | Path | None = None,
    *,
    camera: bool = False,
    camera_index: int = 0,
    resolution: tuple[int, int] | None = None,
    fps: float | None = None,
    picamera: bool | None = None,
    realtime: bool = False,
    loop: bool = False,
    stop: threading.Event | None = None,
    threaded: bool = True,
) -> Source:
    """Pick the source for a path or for the camera options (not opened yet: use ``with``).

    Args:
        source: an image, a folder of images, a glob pattern or a video file.
        camera: use a camera instead of ``source``.
        camera_index: camera number (``/dev/videoN`` for OpenCV, the picamera2 index on a Pi).
        resolution: requested camera (width, height).
        fps: requested camera frame rate.
        picamera: True forces picamera2, False forces OpenCV; None uses picamera2 when it imports and
            lists a camera.
        realtime: play a video file at its own frame rate, as a live camera stand-in.
        loop: play a video file over and over.
        stop: an event that ends iteration of threaded sources when set.
        threaded: run cameras and videos in a capture thread (:class:`ThreadedCapture`).

    Raises:
        ValueError: neither or both of ``source`` and ``camera`` given.
        CameraError: ``picamera=True`` but picamera2 is unusable.
    """
    if camera == (source is not None):
        raise ValueError("give either a source path or camera=True, not both or neither")
    chosen: Source
    if camera:
        if picamera is None:
            picamera, why = picamera_status()
            log.info("camera %d: %s", camera_index, why if picamera else f"using OpenCV ({why})")
        elif picamera:
            usable, why = picamera_status()
            if not usable:
                raise CameraError(f"the Pi camera is not usable: {why}")
        camera_cls = PiCamera if picamera else OpenCVCamera
        chosen = camera_cls(camera_index, resolution, fps)
    elif Path(str(source)).suffix.lower() in VIDEO_SUFFIXES and not _GLOB_CHARS & set(str(source)):
        chosen = VideoSource(source, realtime=realtime, loop=loop)
    elif loop:
        raise ValueError(f"--loop plays a video file over and over; {source} is not one")
    else:
        return ImageSource(source)
    return ThreadedCapture(chosen, stop=stop) if threaded else chosen
