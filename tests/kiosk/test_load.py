"""A bounded load test on loopback: 100 concurrent page loads from ten clients and 20 uploads from four
against a real kiosk (addresses 127.0.0.2-11 and 127.0.0.20-23, all loopback)."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.helpers.kiosk import free_port, http_get, jpeg_bytes, kiosk_process

PAGE_LOADS = 100
UPLOADS = 20


def _request(port: int, client: str, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(client, 0))
    try:
        conn.request(method, path, body=body or None, headers={"Host": "127.0.0.1", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _page_load(port: int, client: str) -> tuple[list[int], float]:
    """The page and its two assets, as a browser fetches them; (statuses, seconds)."""
    start = time.monotonic()
    statuses = [_request(port, client, "GET", path)[0] for path in ("/", "/static/kiosk.css", "/static/kiosk.js")]
    return statuses, time.monotonic() - start


_uploaders = threading.local()


def _upload(port: int, photo: bytes) -> tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="lesion.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    if not hasattr(_uploaders, "client"):  # one address per uploading thread
        _uploaders.client = f"127.0.0.{20 + threading.get_ident() % 4}"
    start = time.monotonic()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, answer = _request(port, _uploaders.client, "POST", "/classify", body, headers)
    assert "not a diagnosis" in json.loads(answer)["disclaimer"]
    return status, time.monotonic() - start


def test_kiosk_answers_every_request_under_a_burst(tiny_tflite, video):
    port = free_port()
    base = f"http://127.0.0.1:{port}"  # loopback only: this load never leaves the machine
    photo = jpeg_bytes()
    with kiosk_process(tiny_tflite, video, port) as proc:
        started = time.monotonic()
        # ten clients loading the page ten times each at once; four uploading five photos each
        with ThreadPoolExecutor(max_workers=PAGE_LOADS) as pool, ThreadPoolExecutor(max_workers=4) as senders:
            pages = [pool.submit(_page_load, port, f"127.0.0.{2 + n % 10}") for n in range(PAGE_LOADS)]
            uploads = [senders.submit(_upload, port, photo) for _ in range(UPLOADS)]
            page_results = [f.result(timeout=60) for f in pages]
            upload_results = [f.result(timeout=60) for f in uploads]
        wall = time.monotonic() - started
        assert all(statuses == [200, 200, 200] for statuses, _ in page_results)
        assert all(status == 200 for status, _ in upload_results)
        assert proc.poll() is None, "the kiosk died under load"
        status, body = http_get(f"{base}/healthz")
        assert status in (200, 503) and "model_loaded" in json.loads(body)
        assert http_get(f"{base}/")[0] == 200
        results = json.loads(http_get(f"{base}/results")[1])
        assert results["recent"] == []  # another client sees nothing of the uploads (each sees its own only)
    page_times = sorted(t for _, t in page_results)
    upload_times = sorted(t for _, t in upload_results)
    print(
        f"\nload: {PAGE_LOADS} page loads (3 requests each) + {UPLOADS} uploads in {wall:.2f} s; "
        f"page load p50 {statistics.median(page_times) * 1000:.0f} ms, max {page_times[-1] * 1000:.0f} ms; "
        f"upload p50 {statistics.median(upload_times) * 1000:.0f} ms, max {upload_times[-1] * 1000:.0f} ms"
    )
