"""A bounded load test on loopback: 100 concurrent page loads and 20 uploads against a real kiosk."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from kiosk_support import free_port, http_get, jpeg_bytes, kiosk_process

PAGE_LOADS = 100
UPLOADS = 20


def _page_load(base: str) -> tuple[list[int], float]:
    """The page and its two assets, as a browser fetches them; (statuses, seconds)."""
    start = time.monotonic()
    statuses = [http_get(f"{base}{path}", timeout=30)[0] for path in ("/", "/static/kiosk.css", "/static/kiosk.js")]
    return statuses, time.monotonic() - start


def _upload(base: str, photo: bytes) -> tuple[int, float]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="lesion.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base}/classify", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as response:
        status = response.status
        assert "not a diagnosis" in json.loads(response.read())["disclaimer"]
    return status, time.monotonic() - start


def test_kiosk_answers_every_request_under_a_burst(tiny_tflite, video):
    port = free_port()
    base = f"http://127.0.0.1:{port}"  # loopback only: this load never leaves the machine
    photo = jpeg_bytes()
    with kiosk_process(tiny_tflite, video, port) as proc:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=PAGE_LOADS + UPLOADS) as pool:
            pages = [pool.submit(_page_load, base) for _ in range(PAGE_LOADS)]
            uploads = [pool.submit(_upload, base, photo) for _ in range(UPLOADS)]
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
        assert len(results["recent"]) == 20  # the bounded deque holds the newest 20 uploads
    page_times = sorted(t for _, t in page_results)
    upload_times = sorted(t for _, t in upload_results)
    print(
        f"\nload: {PAGE_LOADS} page loads (3 requests each) + {UPLOADS} uploads in {wall:.2f} s; "
        f"page load p50 {statistics.median(page_times) * 1000:.0f} ms, max {page_times[-1] * 1000:.0f} ms; "
        f"upload p50 {statistics.median(upload_times) * 1000:.0f} ms, max {upload_times[-1] * 1000:.0f} ms"
    )
