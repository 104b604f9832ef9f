"""Faults a kiosk meets: the source ends or fails, systemd stops it, the port is taken."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from edge.capture.frames import CameraError
from edge.capture.sources import open_source
from edge.kiosk.frameloop import FrameLoop
from edge.kiosk.live import LiveState
from edge.kiosk.web import KioskConfig, serve
from tests.helpers.kiosk import frames_of, free_port, http_get, kiosk_process, wait_for, write_video


def test_source_end_turns_health_503_while_the_page_serves(classifier, tmp_path):
    short = write_video(tmp_path / "short.avi", frames=8)
    port, stop = free_port(), threading.Event()
    runner = threading.Thread(
        target=serve,
        args=(classifier, open_source(str(short)), "127.0.0.1", port),
        kwargs={"config": KioskConfig(max_fps=30.0), "stop": stop},
        daemon=True,
    )
    runner.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz", timeout=20)  # listening
        deadline = time.monotonic() + 20
        while (health := json.loads(http_get(f"{base}/healthz")[1]))["status"] != "ended":
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert http_get(f"{base}/healthz")[0] == 503 and health["source_alive"] is False
        assert health["frames_total"] == 8
        page_status, page = http_get(f"{base}/")
        assert page_status == 200 and b"Not a diagnosis" in page
        results = json.loads(http_get(f"{base}/results")[1])
        assert results["status"] == "ended" and results["live"] is None  # the last frame is no live result
        request = urllib.request.Request(f"{base}/capture", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 503 and b"no live camera image" in refused.value.read()
        frame_status, frame = http_get(f"{base}/frame.jpg")  # "camera stopped" is what the live view shows
        assert frame_status == 200 and frame[:3] == b"\xff\xd8\xff"
    finally:
        stop.set()
        runner.join(5)
    assert not runner.is_alive()


def test_a_lost_camera_marks_the_source_failed(classifier):
    def frames():
        yield from frames_of(3)
        raise CameraError("camera 0 was lost and did not come back within 30 s; check its cable")

    state = LiveState(None)
    loop = FrameLoop(state, classifier, frames(), max_fps=0)
    loop.run()  # in this thread: returns once the source fails
    health = state.health()
    assert health["status"] == "failed" and not health["healthy"]
    assert health["source_error"].startswith("camera 0 was lost")
    assert 'errors_total{kind="source"} 1' in state.metrics.render()
    assert state.latest().seq == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_real_kiosk_within_a_second(tiny_tflite, video, signum):
    port = free_port()
    with kiosk_process(tiny_tflite, video, port) as proc:
        viewer = socket.create_connection(("127.0.0.1", port), timeout=5)  # a viewer's open keep-alive connection
        viewer.sendall(b"GET /frame.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert viewer.recv(1024).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        proc.send_signal(signum)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - started
        viewer.close()
        stderr = proc.stderr.read().decode()
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def _cli(*args: str, env: dict[str, str] | None = None):
    from click.testing import CliRunner

    from edge.app import cli

    return CliRunner().invoke(cli, [str(a) for a in args], env=env or {})


def test_cli_refuses_to_listen_beyond_loopback_without_a_token(tiny_tflite, video):
    result = _cli("--model", tiny_tflite, "--source", video, "--serve", "0.0.0.0:8080", env={"EDGE_DETECT_TOKEN": ""})
    assert result.exit_code == 2
    assert "needs an access token" in result.stderr and "Traceback" not in result.output
    short = _cli("--model", tiny_tflite, "--source", video, "--serve", "0.0.0.0:8080", "--token", "abc")
    assert short.exit_code == 2 and "at least 16 characters" in short.stderr


def test_cli_says_when_the_port_is_taken(tiny_tflite, video):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("--model", tiny_tflite, "--source", video, "--serve", f"127.0.0.1:{port}")
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert len(result.stderr.strip().splitlines()[-1]) < 200 and "Traceback" not in result.output


def test_cli_record_needs_serve(tiny_tflite, video, tmp_path):
    result = _cli("--model", tiny_tflite, "--source", video, "--record", tmp_path / "rec")
    assert result.exit_code == 2 and "needs --serve" in result.output
    assert not (tmp_path / "rec").exists()


def test_a_real_kiosk_records_only_when_asked(tiny_tflite, video, tmp_path):
    import urllib.request

    folder = tmp_path / "records"
    port = free_port()
    with kiosk_process(tiny_tflite, video, port, "--record", str(folder)):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/capture", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
    assert sorted(p.suffix for p in folder.iterdir()) == [".jpg", ".json"]


def test_loop_plays_a_demo_video_over_and_over(tmp_path):
    from edge.capture.sources import VideoSource

    short = write_video(tmp_path / "short.avi", frames=5)
    source = VideoSource(short, loop=True)
    got = []
    with source:
        for frame in source.frames():
            got.append(frame.index)
            if len(got) == 12:
                source.request_stop()
    assert got[:12] == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    with pytest.raises(ValueError, match="not one"):
        open_source(str(tmp_path), loop=True)
