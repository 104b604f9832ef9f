"""What a hostile client or a careless day at the clinic tries: decompression bombs, huge bodies, a
lock-out by one client, stale results, a stranger at the kiosk reading the last patient's photos.
All traffic stays on loopback addresses (127.0.0.0/8) and every loop is bounded."""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.kiosk.uploads import DecodeGate, KioskBusy
from edge.kiosk.web import KioskConfig, create_app, serve
from tests.helpers.kiosk import free_port, http_get, jpeg_bytes, kiosk_process, publish_frame, wait_for


def _multipart(photo: bytes, boundary: str = "b0undary") -> tuple[bytes, str]:
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _post(port: int, body: bytes, content_type: str, client: str = "127.0.0.1") -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(client, 0))
    try:
        conn.request("POST", "/classify", body=body, headers={"Content-Type": content_type, "Host": "127.0.0.1"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _status(pid: int, key: str) -> int:
    """A /proc/PID/status figure in kB (VmRSS, VmHWM)."""
    return int(re.search(rf"{key}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


def test_four_concurrent_decompression_bombs_keep_the_kiosk_small(tiny_tflite, video):
    flat = np.full((2800, 2800, 3), 200, np.uint8)  # 7.8 megapixels: the largest PNG decoded
    png = cv2.imencode(".png", flat)[1].tobytes()
    jpeg = cv2.imencode(".jpg", np.full((6000, 6000, 3), 180, np.uint8))[1].tobytes()  # 36 MP: read at 1/4
    huge = cv2.imencode(".png", np.zeros((6300, 6300, 3), np.uint8))[1].tobytes()  # refused from its header
    assert len(png) < 200_000 and len(huge) < 200_000
    port = free_port()
    with kiosk_process(tiny_tflite, video, port) as proc:
        with ThreadPoolExecutor(max_workers=4) as pool:  # four clients, each with a bomb
            statuses = list(
                pool.map(lambda n: _post(port, *_multipart([png, jpeg][n % 2]), f"127.0.0.{30 + n}"), range(8))
            )
        refused = _post(port, *_multipart(huge))
        assert proc.poll() is None, "the kiosk died"
        peak_mb = _status(proc.pid, "VmHWM") / 1024
        assert wait_for(f"http://127.0.0.1:{port}/healthz", status=200)[0] == 200
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 4, statuses
    assert refused == 400
    assert peak_mb <= 300, f"peak resident memory {peak_mb:.0f} MB"


def test_the_decode_gate_queues_a_few_and_refuses_the_rest():
    gate = DecodeGate(queue=1, wait_s=5.0)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gate.turn():
            inside.set()
            release.wait(5.0)

    first = threading.Thread(target=hold)
    first.start()
    assert inside.wait(5.0)
    waiter = threading.Thread(target=lambda: gate.turn().__enter__())  # the one place in the queue
    waiter.start()
    time.sleep(0.2)
    with pytest.raises(KioskBusy, match="busy"), gate.turn():
        pass
    release.set()
    first.join(5.0)
    waiter.join(5.0)


@pytest.fixture
def live_kiosk(classifier, video, monkeypatch):
    """An in-process kiosk (so waitress's temporary files can be watched) on a looping video."""
    from waitress.buffers import TempfileBasedBuffer

    spooled: list[str] = []
    original = TempfileBasedBuffer.newfile
    monkeypatch.setattr(TempfileBasedBuffer, "newfile", lambda self: spooled.append("tmp") or original(self))
    from edge.capture.sources import open_source

    port, stop = free_port(), threading.Event()
    config = KioskConfig(max_client_connections=16, idle_timeout_s=2.0)
    runner = threading.Thread(
        target=serve,
        args=(classifier, open_source(str(video), loop=True), "127.0.0.1", port),
        kwargs={"config": config, "stop": stop},
        daemon=True,
    )
    runner.start()
    wait_for(f"http://127.0.0.1:{port}/healthz", status=200)
    yield port, spooled
    stop.set()
    runner.join(5.0)


def _raw(port: int, head: bytes, body: bytes = b"", client: str = "127.0.0.1") -> bytes:
    """Send a request as a client would, stopping the body as soon as an answer comes; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(client, 0)) as conn:
        conn.sendall(head)
        for at in range(0, len(body), 256 * 1024):
            if select.select([conn], [], [], 0)[0]:
                break  # answered (refused) before the whole body went
            with contextlib.suppress(OSError):
                conn.sendall(body[at : at + 256 * 1024])
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer


def test_oversized_bodies_are_refused_in_memory_with_the_security_headers(live_kiosk):
    port, spooled = live_kiosk
    big = 12 * 1024 * 1024
    # Expect: 100-continue with a Content-Length over the limit: refused before any of the body is read
    head = (
        f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {big}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer = _raw(port, head)
    assert b"HTTP/1.1 413" in answer, answer[:200]
    assert b"X-Content-Type-Options: nosniff" in answer and b"Content-Security-Policy:" in answer
    # chunked: refused once it passes the limit, before waitress would spill it into a temporary file
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(big // len(chunk))) + b"0\r\n\r\n"
    head = (
        b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    )
    answer = _raw(port, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"X-Frame-Options: DENY" in answer
    assert spooled == [], "an upload was spooled to a temporary file"
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200


def test_one_client_cannot_lock_out_the_kiosk(live_kiosk):
    port, _ = live_kiosk
    half_open = []
    try:
        for _ in range(250):  # a slowloris from 127.0.0.2: headers that never end
            conn = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            half_open.append(conn)
        started = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert status == 200 and json.loads(body)["healthy"], body
        assert time.monotonic() - started < 2.0
        time.sleep(0.5)
        closed = 0
        for conn in half_open:
            conn.settimeout(0.05)
            try:
                closed += conn.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed += 1
        assert closed >= 250 - 16, f"only {closed} of the client's 250 connections were closed"
        time.sleep(4.5)  # past the idle timeout (2 s) and its sweep
        survivors = 0
        for conn in half_open:
            conn.settimeout(0.05)
            try:
                survivors += conn.recv(1) != b""
            except TimeoutError:
                survivors += 1
            except OSError:
                pass
        assert survivors == 0, f"{survivors} idle connections were kept"
    finally:
        for conn in half_open:
            conn.close()


def test_no_live_result_once_the_camera_stalls(state, client, clock):
    assert client.post("/capture").status_code == 409  # no frame yet
    publish_frame(state)
    assert client.get("/results").json["live"]["label"]
    assert client.post("/capture").status_code == 201
    clock.now += 6.0  # past stale_after_s (5 s): the picture on screen is no longer live
    results = client.get("/results").json
    assert results["live"] is None and results["status"] == "stale"
    refused = client.post("/capture")
    assert refused.status_code == 503 and "no live camera image" in refused.json["error"]


def test_results_use_unguessable_ids_and_are_forgotten(tiny_tflite, clock):
    from edge.kiosk.live import LiveState
    from edge.model.classifier import Classifier

    state = LiveState(Classifier(tiny_tflite, threads=1), recent_size=5, recent_ttl_s=60.0, clock=clock)
    client = create_app(state, KioskConfig()).test_client()
    publish_frame(state)
    ids = [client.post("/capture").json["id"] for _ in range(2)]
    assert all(len(i) >= 20 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids) and ids[0] != ids[1]
    assert client.get(f"/results/{ids[0]}.jpg").status_code == 200
    assert client.get("/results/000001.jpg").status_code == 404
    clock.now += 61.0  # nobody used the kiosk for a minute: the next person sees nothing of the last
    assert client.get("/results").json["recent"] == []
    assert client.get(f"/results/{ids[1]}.jpg").status_code == 404
    publish_frame(state)
    kept = client.post("/capture").json["id"]
    assert client.post("/results/clear").json == {"cleared": 1}  # the page's Clear button
    assert client.get(f"/results/{kept}.jpg").status_code == 404
    assert client.get("/results").json["recent"] == []


def test_each_result_expires_on_its_own_clock_and_only_its_browser_sees_it(tiny_tflite, clock):
    from edge.kiosk.live import LiveState
    from edge.model.classifier import Classifier

    state = LiveState(Classifier(tiny_tflite, threads=1), recent_size=20, recent_ttl_s=60.0, clock=clock)
    app = create_app(state, KioskConfig())
    kiosk, other = app.test_client(), app.test_client()
    publish_frame(state)
    first = kiosk.post("/capture").json["id"]
    for _ in range(5):  # a busy kiosk: a result every 20 s never keeps the first one alive
        clock.now += 20.0
        publish_frame(state)
        kiosk.post("/capture")
    recent = [r["id"] for r in kiosk.get("/results").json["recent"]]
    assert first not in recent and len(recent) == 4 and kiosk.get(f"/results/{first}.jpg").status_code == 404
    assert other.get("/results").json["recent"] == []  # another client on the network sees none of them
    assert other.get(f"/results/{recent[0]}.jpg").status_code == 404
    assert other.post("/results/clear").json == {"cleared": 0} and len(kiosk.get("/results").json["recent"]) == 4


def test_upload_answers_busy_when_the_queue_is_full(state, monkeypatch):
    import io

    monkeypatch.setattr(DecodeGate, "turn", lambda self: (_ for _ in ()).throw(KioskBusy("The kiosk is busy.")))
    client = create_app(state, KioskConfig()).test_client()
    data = {"image": (io.BytesIO(jpeg_bytes()), "lesion.jpg")}
    busy = client.post("/classify", data=data, content_type="multipart/form-data")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "5" and "busy" in busy.json["error"]


def test_the_devices_own_screen_and_health_check_answer_whatever_other_clients_do(live_kiosk):
    """13 addresses x 16 half-open connections (more than the 200 all other clients may hold together) and four
    clients that ask for live frames and never read: the device's own page and /healthz still answer in 1 s."""
    port, _ = live_kiosk
    held = []
    try:
        for n in range(13):
            for _ in range(16):
                conn = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(f"127.0.0.{20 + n}", 0))
                conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers that never end
                held.append(conn)
        for n in range(4):  # viewers that never read what they asked for
            conn = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(f"127.0.0.{40 + n}", 0))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.sendall(b"GET /frame.jpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 50)
            held.append(conn)
        for path in ("/healthz", "/", "/frame.jpg", "/results"):
            started = time.monotonic()
            status, _ = http_get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert status == 200 and time.monotonic() - started < 1.0, (path, status, time.monotonic() - started)
    finally:
        for conn in held:
            conn.close()


@pytest.fixture
def token_kiosk(classifier, video):
    """An in-process kiosk that wants a token, with short deadlines for slow requests."""
    from edge.capture.sources import open_source

    port, stop, token = free_port(), threading.Event(), "a-token-for-the-hardening-tests"
    config = KioskConfig(header_timeout_s=1.5, min_upload_bytes_per_s=4000.0, idle_timeout_s=5.0)
    runner = threading.Thread(target=serve, args=(classifier, open_source(str(video), loop=True), "127.0.0.1", port),
                              kwargs={"config": config, "stop": stop, "token": token}, daemon=True)  # fmt: skip
    runner.start()
    wait_for(f"http://127.0.0.1:{port}/healthz", status=200)
    yield port, token
    stop.set()
    runner.join(5.0)


def test_an_unauthenticated_upload_is_refused_on_its_head_before_its_body(token_kiosk):
    port, _ = token_kiosk
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.5", 0)) as conn:
        conn.sendall(b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n\r\n" + b"x" * 1000)  # fmt: skip
        answer = b""
        while chunk := conn.recv(4096):  # answered with the head alone (the ten megabytes were never
            answer += chunk  # sent), then closed
    assert answer.startswith(b"HTTP/1.1 401") and b"www-authenticate: bearer" in answer.lower(), answer[:400]
    assert b"X-Content-Type-Options: nosniff" in answer and b"access token" in answer


def _trickle(conn: socket.socket, data: bytes, gap: float) -> float | None:
    """Send ``data`` a byte every ``gap`` s; the seconds until the kiosk closed the connection, or None."""
    started = time.monotonic()
    for byte in data:
        try:
            conn.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - started
        time.sleep(gap)
        if select.select([conn], [], [], 0)[0]:
            try:
                if conn.recv(1) == b"":
                    return time.monotonic() - started
            except OSError:
                return time.monotonic() - started
    return None


def test_slow_heads_and_slow_bodies_are_closed(token_kiosk):
    port, token = token_kiosk
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.6", 0)) as conn:
        closed_after = _trickle(conn, b"GET /results HTTP/1.1\r\nHost: 127.0.0.1\r\n", 0.4)  # never a whole head
    assert closed_after is not None and closed_after < 3.5, closed_after  # 1.5 s allowed, checked as bytes come
    head = (f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 4000\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=("127.0.0.7", 0)) as conn:
        conn.sendall(head)
        closed_after = _trickle(conn, b"x" * 40, 0.3)  # 4,000 bytes get 1.5 + 1 s; at this pace, 20 minutes
    assert closed_after is not None and closed_after < 5.0, closed_after
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
