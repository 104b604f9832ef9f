"""Cameras: a V4L2/UVC device through OpenCV, and the Raspberry Pi camera through picamera2.

``picamera2`` is imported only when a Pi camera is probed or opened, so this module imports on any
laptop. Both yield RGB frames; see :mod:`edge.capture.frames` for the format.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np

from edge.capture.frames import CameraError, Frame, Source

__all__ = ["OpenCVCamera", "PiCamera", "picamera_status"]

log = logging.getLogger(__name__)


class OpenCVCamera(Source):
    """A V4L2/UVC camera through ``cv2.VideoCapture(index)``.

    When the camera stops delivering frames mid-run it is reopened with exponential back-off
    (``backoff`` seconds doubling up to ``max_backoff``); after ``reconnect_timeout`` seconds
    without a frame iteration raises :class:`CameraError`.

    Args:
        index: the device number (``/dev/videoN``).
        resolution: requested (width, height); the camera may pick the nearest it supports.
        fps: requested frame rate; None keeps the camera's.
    """

    live = True
    sequential = True

    def __init__(
        self,
        index: int = 0,
        resolution: tuple[int, int] | None = None,
        fps: float | None = None,
        *,
        reconnect_timeout: float = 30.0,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        capture_factory: Callable[..., Any] = cv2.VideoCapture,
    ) -> None:
        super().__init__()
        self.index = index
        self.resolution = resolution
        self.fps = fps
        self.reconnect_timeout = reconnect_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._factory = capture_factory
        self._cap: Any = None
        self.reconnects = 0

    @property
    def origin(self) -> str:
        return f"camera:{self.index}"

    def _try_open(self) -> Any | None:
        cap = self._factory(self.index)
        if not cap.isOpened():
            cap.release()
            return None
        if self.resolution:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.resolution[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.resolution[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of stale ones
        return cap

    def open(self) -> None:
        cap = self._try_open()
        if cap is None:
            raise CameraError(
                f"no camera at OpenCV device index {self.index} (/dev/video{self.index}); "
                "connect one, pick another with --camera-index, or pass --source"
            )
        self._cap = cap
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        log.info("camera %d open at %dx%d, %.0f fps", self.index, width, height, cap.get(cv2.CAP_PROP_FPS))

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _reconnect(self) -> None:
        """Reopen the lost camera with back-off, or raise CameraError after ``reconnect_timeout``."""
        self._release()
        log.warning("camera %d stopped delivering frames; reconnecting", self.index)
        deadline = time.monotonic() + self.reconnect_timeout
        delay = self.backoff
        while not self._stop.is_set():
            cap = self._try_open()
            if cap is not None:
                ok, _ = cap.read()
                if ok:
                    self._cap = cap
                    self.reconnects += 1
                    log.warning("camera %d is back (reconnect %d)", self.index, self.reconnects)
                    return
                cap.release()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CameraError(
                    f"camera {self.index} was lost and did not come back within "
                    f"{self.reconnect_timeout:g} s; check its cable"
                )
            log.info("camera %d not back yet; retrying in %.2g s", self.index, min(delay, remaining))
            self._stop.wait(min(delay, remaining))
            delay = min(delay * 2, self.max_backoff)

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            self.open()
        index = 0
        while not self._stop.is_set():
            ok, bgr = self._cap.read() if self._cap is not None else (False, None)
            if not ok or bgr is None:
                self._reconnect()
                continue
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.time(), self.origin, index)
            index += 1

    def __repr__(self) -> str:
        return f"OpenCVCamera({self.index})"


def picamera_status() -> tuple[bool, str]:
    """(usable, why): whether ``picamera2`` imports and lists at least one camera."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        return False, "picamera2 is not installed"
    except (OSError, RuntimeError) as exc:  # libcamera missing or broken on this machine
        return False, f"picamera2 does not load ({exc})"
    try:
        cameras = Picamera2.global_camera_info()
    except (OSError, RuntimeError) as exc:
        return False, f"picamera2 cannot list cameras ({exc})"
    if not cameras:
        return False, "picamera2 lists no cameras"
    return True, f"picamera2 camera {cameras[0].get('Model', '?')}"


class PiCamera(Source):
    """The Raspberry Pi camera through ``picamera2`` (imported when opened).

    The stream is configured as ``"RGB888"``, which picamera2 (following libcamera/DRM naming)
    stores as [B, G, R] bytes per pixel; frames are converted to RGB before they leave the source.
    """

    live = True
    sequential = True

    def __init__(
        self, index: int = 0, resolution: tuple[int, int] | None = (640, 480), fps: float | None = None
    ) -> None:
        super().__init__()
        self.index = index
        self.resolution = resolution or (640, 480)
        self.fps = fps
        self._cam: Any = None

    @property
    def origin(self) -> str:
        return f"camera:{self.index}"

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError("the Pi camera needs picamera2: `sudo apt install python3-picamera2`") from exc
        try:
            cam = Picamera2(self.index)
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            config = cam.create_preview_configuration(
                main={"format": "RGB888", "size": tuple(self.resolution)}, controls=controls
            )
            cam.configure(config)
            cam.start()
        except (IndexError, OSError, RuntimeError) as exc:
            raise CameraError(f"cannot start Pi camera {self.index}: {exc}") from exc
        self._cam = cam
        log.info("Pi camera %d started at %dx%d", self.index, *self.resolution)

    def _release(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None

    def frames(self) -> Iterator[Frame]:
        if self._cam is None:
            self.open()
        index = 0
        while not self._stop.is_set():
            try:
                bgr = self._cam.capture_array("main")
            except (OSError, RuntimeError) as exc:
                raise CameraError(f"the Pi camera stopped delivering frames: {exc}") from exc
            rgb = cv2.cvtColor(np.ascontiguousarray(bgr[:, :, :3]), cv2.COLOR_BGR2RGB)
            yield Frame(rgb, time.time(), self.origin, index)
            index += 1

    def __repr__(self) -> str:
        return f"PiCamera({self.index})"
