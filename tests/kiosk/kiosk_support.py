"""Helpers for the kiosk tests: synthetic lesion images and videos, free ports, one published frame."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.frames import Frame
from edge.live import LiveState, encode_jpeg

ROOT = Path(__file__).resolve().parents[2]


def lesion_image(i: int = 0, size: tuple[int, int] = (320, 240), seed: int = 0) -> np.ndarray:
    """A synthetic RGB lesion photo: textured skin with a dark blob that drifts with ``i``.

    Sharp, well exposed and with a lesion in the guide box, so it passes the quality gates.
    """
    width, height = size
    rng = np.random.default_rng(seed + i)
    skin = np.array([205, 160, 135], np.float32)
    image = skin + rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    centre = (width // 2 + (i % 10) - 5, height // 2 + (i % 6) - 3)
    cv2.ellipse(image, centre, (width // 7, height // 6), 20, 0, 360, (95, 60, 45), -1)
    return np.clip(image, 0, 255).astype(np.uint8)


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
