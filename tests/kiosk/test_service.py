"""systemd integration: sd_notify over a fake NOTIFY_SOCKET, the watchdog, and pings stopping on a stall."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from kiosk_support import frames_of, free_port

from edge.frameloop import FrameLoop
from edge.live import LiveState
from edge.service import Notifier, Watchdog, watchdog_interval
from edge.sources import open_source
from edge.web import KioskConfig, serve


@pytest.fixture
def notify_socket(tmp_path: Path):
    """A bound AF_UNIX datagram socket standing in for systemd's; yields (path, socket)."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5.0)
    yield str(path), sock
    sock.close()


def receive(sock: socket.socket, until: float) -> list[tuple[float, str]]:
    """Messages received until ``until`` (monotonic), each with its arrival time."""
    out = []
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


def drain(sock: socket.socket) -> list[str]:
    """Every message already queued, without waiting."""
    out = []
    sock.settimeout(0)
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notifier_sends_to_a_path_and_to_the_abstract_namespace(notify_socket):
    path, sock = notify_socket
    notifier = Notifier(path)
    assert notifier.ready(status="up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    name = f"skinedge-test-{time.monotonic_ns()}"
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    abstract.bind(b"\0" + name.encode())
    abstract.settimeout(5.0)
    try:
        assert Notifier("@" + name).stopping()
        assert abstract.recv(4096) == b"STOPPING=1"
    finally:
        abstract.close()


def test_notifier_is_a_no_op_outside_systemd(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier().enabled and not Notifier().ready()
    gone = Notifier(str(tmp_path / "nobody-listens.sock"))
    assert gone.enabled and not gone.watchdog()  # a vanished socket is logged, never raised


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None  # another process's


def test_watchdog_rate_limits_its_pings(notify_socket):
    path, sock = notify_socket
    now = [0.0]
    dog = Watchdog(Notifier(path), interval=1.0, clock=lambda: now[0])
    sent = []
    for t in (0.0, 0.3, 0.9, 1.0, 1.5, 2.2):
        now[0] = t
        sent.append(dog.tick())
    assert sent == [True, False, False, True, False, True]
    assert [sock.recv(64) for _ in range(3)] == [b"WATCHDOG=1"] * 3


def test_serve_sends_ready_watchdog_status_and_stopping(notify_socket, monkeypatch, classifier, video):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    stop = threading.Event()
    config = KioskConfig(max_fps=20.0)
    runner = threading.Thread(
        target=serve,
        args=(classifier, open_source(str(video)), "127.0.0.1", free_port()),
        kwargs={"config": config, "stop": stop},
        daemon=True,
    )
    started = time.monotonic()
    runner.start()
    try:
        messages = receive(sock, until=started + 1.2)
    finally:
        stop.set()
        runner.join(5.0)
    tail = receive(sock, until=time.monotonic() + 0.3)
    texts = [m for _, m in messages]
    assert texts[0].startswith("READY=1\nSTATUS=live from "), texts[:3]
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    assert len(pings) >= 5, texts
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))  # arrival times: early ones may queue up
    assert gaps[len(gaps) // 2] >= 0.09, gaps  # rate-limited to half of WATCHDOG_USEC
    assert any(m.startswith("STATUS=live ") and " fps, last: " in m for m in texts)
    assert any(m.startswith("STOPPING=1") for _, m in tail)
    assert not runner.is_alive()


def test_watchdog_pings_stop_when_the_frame_loop_stalls(notify_socket, classifier):
    path, sock = notify_socket
    stalled, release = threading.Event(), threading.Event()

    def frames():
        for n, frame in enumerate(frames_of(1000)):
            if n == 8:  # e.g. a camera read that never returns
                stalled.set()
                release.wait(10.0)
                return
            yield frame

    notifier = Notifier(path)
    state = LiveState(None)
    loop = FrameLoop(state, classifier, frames(), notifier=notifier, watchdog=Watchdog(notifier, 0.05), max_fps=10)
    loop.start()
    try:
        assert sock.recv(4096).startswith(b"READY=1")
        assert stalled.wait(5.0)
        drain(sock)  # what was sent before the stall
        during = [m for _, m in receive(sock, until=time.monotonic() + 0.6)]
    finally:
        release.set()
        loop.join(5.0)
    assert "WATCHDOG=1" not in during, "a stalled frame loop must not ping the watchdog"
    assert state.latest() is not None and state.latest().seq == 8
    assert state.health()["status"] == "ended"
