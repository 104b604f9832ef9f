from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge.capture import sources
from edge.capture.cameras import OpenCVCamera, PiCamera, picamera_status
from edge.capture.frames import CameraError, Frame, Source, SourceError
from edge.capture.sources import ImageSource, ThreadedCapture, VideoSource, open_source
from tests.edge.edge_synth import make_lesion, marker, read_marker, write_video

RED_BGR = (0, 0, 255)


def _write_png(path, bgr_colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = bgr_colour
    assert cv2.imwrite(str(path), img)
    return path


# --- images, folders, globs


def test_folder_is_searched_recursively_sorted_and_bad_files_are_skipped(tmp_path):
    _write_png(tmp_path / "b.png", RED_BGR)
    _write_png(tmp_path / "sub" / "a.png", RED_BGR)
    _write_png(tmp_path / "a.png", RED_BGR)
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.png").write_bytes(b"ignored: hidden")
    with ImageSource(tmp_path) as src:
        frames = list(src)
    names = [str(f.origin).removeprefix(str(tmp_path) + "/") for f in frames]
    assert names == ["a.png", "b.png", "sub/a.png"]
    assert [s.origin for s in src.skipped] == [str(tmp_path / "corrupt.jpg"), str(tmp_path / "notes.txt")]
    assert "not a readable image" in src.skipped[0].reason
    frame = frames[0]
    assert frame.image.dtype == np.uint8 and frame.image.shape == (30, 40, 3)
    assert tuple(frame.image[0, 0]) == (255, 0, 0), "frames must be RGB"
    assert frame.index == 0 and frames[2].index == 4  # the ordinal among all files found
    assert abs(frame.timestamp - time.time()) < 60


def test_glob_and_single_file(tmp_path):
    for name in ("x1.png", "x2.png", "y.png"):
        _write_png(tmp_path / name, RED_BGR)
    with ImageSource(str(tmp_path / "x*.png")) as src:
        assert [f.origin for f in src] == [str(tmp_path / "x1.png"), str(tmp_path / "x2.png")]
    with ImageSource(tmp_path / "y.png") as src:
        assert len(list(src)) == 1


def test_missing_paths_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"), ImageSource(tmp_path / "nope"):
        pass
    with pytest.raises(FileNotFoundError, match="no files match"), ImageSource(str(tmp_path / "*.png")):
        pass
    with pytest.raises(FileNotFoundError, match="does not exist"), VideoSource(tmp_path / "nope.avi"):
        pass


# --- video files


def test_video_delivers_every_frame_in_order_even_with_a_slow_consumer(tmp_path):
    path = write_video(tmp_path / "clip.avi", n=15)
    with open_source(path) as src:
        assert isinstance(src, ThreadedCapture) and not src.live and src.sequential
        got = []
        for frame in src:
            time.sleep(0.005)  # slower than decoding: a live buffer would drop frames here
            got.append(frame)
    assert [f.index for f in got] == list(range(15))
    seen = np.array([read_marker(f.image) for f in got])
    expected = np.array([marker(i, 15) for i in range(15)])
    assert np.abs(seen - expected).max() < 8, "frames out of order or from the wrong place"  # steps of 18
    assert src.dropped == 0 and src.skipped == []
    assert got[0].origin == str(path) and got[0].image.shape == (240, 320, 3)


def test_video_frames_are_rgb(tmp_path):
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
    for _ in range(3):
        writer.write(np.full((48, 64, 3), RED_BGR, np.uint8))
    writer.release()
    with VideoSource(path) as src:
        r, g, b = next(iter(src)).image[24, 32].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_a_file_opencv_cannot_decode_is_a_source_error(tmp_path):
    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"RIFF not really a video")
    with pytest.raises(SourceError, match="cannot open video"), VideoSource(bogus):
        pass


class FakeCapture:
    """Scripted cv2.VideoCapture: ``script`` is a list of frames (arrays) or None for a failed read."""

    def __init__(self, script, opened=True, frame_count=None):
        self.script = list(script)
        self.opened = opened
        self.frame_count = len(self.script) if frame_count is None else frame_count
        self.released = False

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):
        if not self.script:
            return False, None
        item = self.script.pop(0)
        return (item is not None), item

    def get(self, prop):
        return {cv2.CAP_PROP_FRAME_COUNT: self.frame_count, cv2.CAP_PROP_FPS: 25.0}.get(prop, 0)

    def set(self, prop, value):
        return True

    def release(self):
        self.released = True


def test_unreadable_video_frames_are_skipped_and_counted(tmp_path):
    (tmp_path / "v.avi").write_bytes(b"x")
    good = np.zeros((8, 8, 3), np.uint8)
    cap = FakeCapture([good, None, None, good, None], frame_count=6)  # the header promises one more
    with VideoSource(tmp_path / "v.avi", capture_factory=lambda _p: cap) as src:
        indices = [f.index for f in src]
    assert indices == [0, 3]
    assert [s.origin for s in src.skipped] == [f"{tmp_path / 'v.avi'}#1", f"{tmp_path / 'v.avi'}#2"]
    assert cap.released


def test_realtime_video_is_paced_and_live(tmp_path):
    path = write_video(tmp_path / "rt.avi", n=4, fps=20.0)
    with open_source(path, realtime=True) as src:
        assert src.live
        start = time.monotonic()
        n = sum(1 for _ in src)
    assert n >= 1 and time.monotonic() - start >= 0.1  # 4 frames at 20 fps take 0.15 s


# --- the capture thread


class CountingSource(Source):
    """Yields ``n`` numbered frames, ``delay`` seconds apart; optionally raises after them."""

    def __init__(self, n, delay=0.0, live=False, error=None):
        super().__init__()
        self.n, self.delay, self.live, self.error = n, delay, live, error
        self.closed = False

    def frames(self) -> Iterator[Frame]:
        image = np.zeros((4, 4, 3), np.uint8)
        for i in range(self.n):
            if self._stop.is_set():
                return
            if self.delay:
                time.sleep(self.delay)
            yield Frame(image, time.time(), "fake", i)
        if self.error is not None:
            raise self.error

    def _release(self):
        self.closed = True


def test_live_capture_keeps_only_the_newest_frame():
    with ThreadedCapture(CountingSource(60, delay=0.002, live=True)) as cap:
        got = []
        for frame in cap:
            got.append(frame.index)
            time.sleep(0.02)  # inference slower than the camera
    assert got == sorted(got) and got[-1] == 59
    assert len(got) < 30 and cap.dropped > 0
    assert cap.source.closed


def test_file_capture_drops_nothing():
    with ThreadedCapture(CountingSource(40)) as cap:
        got = [f.index for f in cap]
    assert got == list(range(40)) and cap.dropped == 0


def test_capture_errors_reach_the_consumer():
    with ThreadedCapture(CountingSource(2, error=CameraError("camera gone"))) as cap:
        it = iter(cap)
        assert [next(it).index, next(it).index] == [0, 1]
        with pytest.raises(CameraError, match="camera gone"):
            next(it)


def test_stop_event_ends_a_waiting_consumer_quickly():
    stop = threading.Event()
    cap = ThreadedCapture(CountingSource(1000, delay=0.5, live=True), stop=stop)
    with cap:
        threading.Timer(0.1, stop.set).start()
        start = time.monotonic()
        assert list(cap) == []
        assert time.monotonic() - start < 0.5
    assert cap.source.closed


# --- the OpenCV camera


def test_missing_camera_names_what_was_tried():
    cam = OpenCVCamera(7, capture_factory=lambda _i: FakeCapture([], opened=False))
    with pytest.raises(CameraError, match=r"device index 7 \(/dev/video7\).*--camera-index"), cam:
        pass


def test_lost_camera_reconnects_with_backoff_and_carries_on():
    frame = np.zeros((8, 8, 3), np.uint8)
    opens = []

    def factory(_index):
        opens.append(time.monotonic())
        n = len(opens)
        if n == 1:
            return FakeCapture([frame, frame, None])  # two frames, then the cable comes loose
        if n in (2, 3):
            return FakeCapture([], opened=False)  # not back yet
        return FakeCapture([frame] * 5)  # back (one frame is used to check it)

    class RecordingStop(threading.Event):
        waits: list[float] = []

        def wait(self, timeout=None):
            self.waits.append(timeout)
            return super().wait(0.001)

    cam = OpenCVCamera(0, capture_factory=factory, backoff=0.25, max_backoff=0.4, reconnect_timeout=5)
    cam._stop = RecordingStop()
    with cam:
        indices = [f.index for _, f in zip(range(5), cam)]
    assert indices == [0, 1, 2, 3, 4] and cam.reconnects == 1 and len(opens) == 4
    assert cam._stop.waits == [0.25, 0.4]  # doubled, then capped at max_backoff


def test_lost_camera_gives_up_after_the_timeout():
    frame = np.zeros((8, 8, 3), np.uint8)
    calls = []

    def factory(_index):
        calls.append(1)
        return FakeCapture([frame, None]) if len(calls) == 1 else FakeCapture([], opened=False)

    cam = OpenCVCamera(3, capture_factory=factory, backoff=0.02, max_backoff=0.05, reconnect_timeout=0.3)
    start = time.monotonic()
    with cam, pytest.raises(CameraError, match=r"camera 3 was lost .* within 0.3 s"):
        list(cam)
    assert 0.25 < time.monotonic() - start < 2.0


# --- the Pi camera (a fake picamera2 module)


class FakePicamera2:
    cameras = [{"Model": "imx708", "Num": 0}]
    last = None

    def __init__(self, index=0):
        self.index, self.config, self.started, self.closed = index, None, False, False
        FakePicamera2.last = self

    @classmethod
    def global_camera_info(cls):
        return cls.cameras

    def create_preview_configuration(self, main=None, controls=None):
        return {"main": main, "controls": controls}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        w, h = self.config["main"]["size"]
        bgr = np.zeros((h, w, 3), np.uint8)
        bgr[..., 2] = 200  # picamera2 "RGB888" is [B, G, R] in memory: this pixel is red
        return bgr

    def stop(self):
        self.started = False

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.cameras = [{"Model": "imx708", "Num": 0}]
    return module


def test_pi_camera_converts_rgb888_bgr_bytes_to_rgb(fake_picamera2):
    with PiCamera(0, resolution=(64, 48), fps=10) as cam:
        frame = next(iter(cam))
    config = FakePicamera2.last.config
    assert config["main"] == {"format": "RGB888", "size": (64, 48)}
    assert config["controls"] == {"FrameRate": 10.0}
    assert frame.image.shape == (48, 64, 3) and frame.origin == "camera:0"
    assert tuple(frame.image[0, 0]) == (200, 0, 0)
    assert FakePicamera2.last.closed


def test_open_source_prefers_the_pi_camera_when_one_is_listed(fake_picamera2):
    assert picamera_status()[0] is True
    src = open_source(camera=True, resolution=(64, 48))
    assert isinstance(src, ThreadedCapture) and isinstance(src.source, PiCamera) and src.live
    FakePicamera2.cameras = []
    assert picamera_status() == (False, "picamera2 lists no cameras")
    assert isinstance(open_source(camera=True).source, OpenCVCamera)
    with pytest.raises(CameraError, match="lists no cameras"):
        open_source(camera=True, picamera=True)


def test_without_picamera2_the_opencv_camera_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    assert picamera_status() == (False, "picamera2 is not installed")
    assert isinstance(open_source(camera=True, camera_index=2).source, OpenCVCamera)


def test_open_source_picks_by_path(tmp_path):
    assert isinstance(open_source(tmp_path / "clip.MP4").source, VideoSource)
    assert isinstance(open_source(tmp_path), ImageSource)
    assert isinstance(open_source(str(tmp_path / "*.avi")), ImageSource)  # a glob, not a video
    with pytest.raises(ValueError, match="either"):
        open_source(tmp_path, camera=True)
    assert {".mp4", ".avi"} <= sources.VIDEO_SUFFIXES


def test_lesion_helper_is_rgb():
    img = make_lesion(48, 64)
    assert img[24, 32, 0] < img[0, 0, 0]  # darker in the middle
