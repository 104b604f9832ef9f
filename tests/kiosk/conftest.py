"""Kiosk fixtures: the tiny model as a classifier, a generated lesion video, a state and a test client."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.kiosk.live import LiveState
from edge.kiosk.web import KioskConfig, create_app
from edge.model.classifier import Classifier
from tests.helpers.kiosk import FakeClock, write_video


@pytest.fixture(scope="session")
def classifier(tiny_tflite: Path) -> Classifier:
    return Classifier(tiny_tflite, threads=1)


@pytest.fixture(scope="session")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "lesion.avi")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(tiny_tflite: Path, clock: FakeClock) -> LiveState:
    """A state with its own upload classifier, a fake clock and no frame yet."""
    return LiveState(Classifier(tiny_tflite, threads=1), recent_size=5, stale_after_s=5.0, clock=clock)


@pytest.fixture
def client(state: LiveState):
    return create_app(state, KioskConfig()).test_client()
