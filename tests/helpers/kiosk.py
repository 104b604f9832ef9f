"""Helpers for the kiosk tests and bench/kiosk_memory.py: synthetic lesion images and videos, free ports,
one published frame, a kiosk process."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.capture.frames import Frame
from edge.kiosk.live import LiveState, encode_jpeg

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=32)
def _skin(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    skin = np.array([205, 160, 135], np.float32) + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(skin, 0, 255).astype(np.uint8)


def lesion_image(i: int = 0, size: tuple[int, int] = (320, 240), seed: int = 0) -> np.ndarray:
    """A synthetic RGB lesion photo: textured skin with a dark blob that drifts with ``i``.

    Sharp, well exposed and with a lesion in the guide box, so it passes the quality gates.
    """
    width, height = size
    image = _skin(width, height, seed + i % 10).copy()
    centre = (width // 2 + (i % 10) - 5, height // 2 + (i % 6) - 3)
    cv2.ellipse(image, centre, (width // 7, height // 6), 20, 0, 360, (95, 60, 45), -1)
    return image


def write_video(path: Path, frames: int = 30, size: tuple[int, int] = (320, 240), fps: float = 10.0) -> Path:
    """A small MJPEG .avi of drifting lesion frames (OpenCV's headless build writes MJPG everywhere)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write MJPG video here"
    for i in range(frames):
        writer.write(cv2.cvtColor(lesion_image(i, size), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def jpeg_bytes(image: np.ndarray | None = None) -> bytes:
    return encode_jpeg(lesion_image() if image is None else image, 90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frames_of(n: int, size: tuple[int, int] = (320, 240)) -> Iterator[Frame]:
    for i in range(n):
        yield Frame(lesion_image(i, size), time.time(), "test:frames", i)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def publish_frame(state: LiveState, i: int = 0) -> None:
    """What the frame loop does for one frame, without a thread."""
    image = lesion_image(i)
    prediction = state.assess_and_classify(image)
    state.source_started("test:frames")
    state.publish(image, prediction, encode_jpeg(image), "test:frames")


def edge_detect_command() -> list[str]:
    """The installed ``edge-detect`` console script beside this Python, else the same entry point."""
    script = Path(sys.executable).parent / "edge-detect"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from edge.app import main; main()"]


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, status: int | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    """Poll ``url`` until it answers (with ``status``, when given); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            got = http_get(url, timeout=2.0)
            if status is None or got[0] == status:
                return got
            last = got[0]
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status or ''} within {timeout} s (last: {last})")


@contextlib.contextmanager
def kiosk_process(model: Path, video: Path, port: int, *extra: str) -> Iterator[subprocess.Popen]:
    """A real ``edge-detect --source VIDEO --serve 127.0.0.1:PORT`` process, ready to answer."""
    cmd = [*edge_detect_command(), "--model", str(model), "--source", str(video)]
    cmd += ["--serve", f"127.0.0.1:{port}", "--log-level", "warning", *extra]
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", status=200)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
