"""systemd integration: sd_notify over a fake NOTIFY_SOCKET, the watchdog, and pings stopping on a stall."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from edge.capture.frames import CameraError
from edge.capture.sources import open_source
from edge.kiosk.live import LiveState
from edge.kiosk.service import Notifier, Supervisor, Watchdog, watchdog_interval
from edge.kiosk.web import KioskConfig, serve
from tests.helpers.kiosk import FakeClock, free_port, publish_frame


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
    assert texts[0].startswith("READY=1\nSTATUS="), texts[:3]
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    assert len(pings) >= 5, texts
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))  # arrival times: early ones may queue up
    assert gaps[len(gaps) // 2] >= 0.09, gaps  # rate-limited to half of WATCHDOG_USEC
    assert any(m.startswith("STATUS=live ") and " fps from " in m and ", last: " in m for m in texts), texts
    assert any(m.startswith("STOPPING=1") for _, m in tail)
    assert not runner.is_alive()


class _Probe:
    def __init__(self) -> None:
        self.answers = True

    def __call__(self) -> bool:
        return self.answers


def test_supervisor_pings_while_the_page_answers_and_frames_flow(notify_socket, classifier):
    path, sock = notify_socket
    clock, probe = FakeClock(), _Probe()
    state = LiveState(classifier, stale_after_s=5.0, clock=clock)
    supervisor = Supervisor(state.health, Notifier(path), probe, interval=1.0, clock=clock)
    supervisor.ready()  # no camera yet: the page is up all the same
    assert sock.recv(4096) == b"READY=1\nSTATUS=page up, waiting for the camera"

    def step(seconds: float) -> list[str]:
        clock.now += seconds
        supervisor.tick()
        return drain(sock)

    assert step(1.0) == ["WATCHDOG=1"]  # starting is not a stall
    publish_frame(state)
    sent = step(1.0)
    assert "WATCHDOG=1" in sent and any(m.startswith("STATUS=live ") for m in sent), sent
    sent = step(6.0)  # no frame for 7 s: the camera stalled
    assert sent == ["STATUS=camera stalled: no frame for 7 s"], sent
    publish_frame(state)
    probe.answers = False  # e.g. every server thread or connection taken
    assert step(1.0) == ["STATUS=web page not answering"]
    assert step(1.0) == [], "no pings while the page cannot answer"
    probe.answers = True
    state.source_ended(error="camera 0 was lost")
    sent = step(1.0)  # a failed camera is reported, and the page that says so stays up
    assert sent == ["STATUS=camera failed: camera 0 was lost; the page says so", "WATCHDOG=1"], sent


def test_a_kiosk_without_a_camera_is_ready_and_says_why(notify_socket, monkeypatch, classifier):
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    def no_camera():
        raise CameraError("no camera found at index 0; check the cable or pass --source")
        yield  # a generator that fails when first read

    stop = threading.Event()
    runner = threading.Thread(
        target=serve,
        args=(classifier, no_camera(), "127.0.0.1", free_port()),
        kwargs={"stop": stop},
        daemon=True,
    )
    started = time.monotonic()
    runner.start()
    try:
        texts = [m for _, m in receive(sock, until=started + 6.5)]
    finally:
        stop.set()
        runner.join(5.0)
    assert texts and texts[0].startswith("READY=1\nSTATUS="), texts
    failed = "STATUS=camera failed: no camera found at index 0; check the cable or pass --source; the page says so"
    assert failed in texts, texts


def test_serve_on_every_ipv6_address_also_answers_ipv4(classifier, video):
    from tests.helpers.kiosk import http_get, wait_for

    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:  # a port free on IPv6 and IPv4 alike
        probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        probe.bind(("::", 0))
        port = probe.getsockname()[1]
    token = "a-token-for-the-dual-stack-test"
    stop = threading.Event()
    runner = threading.Thread(target=serve, args=(classifier, open_source(str(video)), "::", port),
                              kwargs={"token": token, "stop": stop}, daemon=True)  # fmt: skip
    runner.start()
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] in (200, 503)  # IPv4 clients reach it too
        assert http_get(f"http://[::1]:{port}/healthz")[0] in (200, 503)
    finally:
        stop.set()
        runner.join(5.0)
