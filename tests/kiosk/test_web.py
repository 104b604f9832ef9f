"""The kiosk's endpoints through Flask's test client: page, results, capture, upload, health, metrics."""

from __future__ import annotations

import io
import re
import struct
import zlib

import pytest

from edge.kiosk.live import LiveState
from edge.kiosk.web import KioskConfig, create_app
from edge.model.classifier import Classifier
from edge.model.modelfile import read_contract
from tests.helpers.kiosk import jpeg_bytes, lesion_image, publish_frame


def upload(client, data: bytes, name: str = "lesion.jpg", field: str = "image"):
    return client.post("/classify", data={field: (io.BytesIO(data), name)}, content_type="multipart/form-data")


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming ``width`` x ``height`` (no pixel data follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_page_is_self_contained_and_says_not_a_diagnosis(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Not a diagnosis" in html
    assert 'src="frame.jpg"' in html and 'enctype="multipart/form-data"' in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    for asset in ("/static/kiosk.js", "/static/kiosk.css"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        html += response.get_data(as_text=True)
        response.close()
    # no CDN, no web font, no external image: the page works offline
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "@import" not in html


def test_page_says_where_the_flag_threshold_was_set(client, tiny_tflite, clock):
    assert "set on images of the training collection" in client.get("/").get_data(as_text=True)
    contract = read_contract(tiny_tflite)
    site = contract.replace(metrics={"site_images": 240, "site_recalibrated": "2026-11-24T04:03:19+00:00"})
    state = LiveState(Classifier(tiny_tflite, threads=1, contract=site), clock=clock)
    html = create_app(state, KioskConfig()).test_client().get("/").get_data(as_text=True)
    assert "set on 240 images from this clinic (2026-11-24)" in html
    counted = site.replace(metrics=site.metrics | {"site_malignant_images": 31})
    state = LiveState(Classifier(tiny_tflite, threads=1, contract=counted), clock=clock)
    html = create_app(state, KioskConfig()).test_client().get("/").get_data(as_text=True)
    assert "set on 240 images (31 malignant) from this clinic (2026-11-24)" in html


def test_healthz_starting_then_healthy_then_stale(client, state, clock):
    starting = client.get("/healthz")
    assert starting.status_code == 503 and starting.json["status"] == "starting"
    assert starting.json["model_loaded"] is True and starting.json["last_frame_age_s"] is None
    publish_frame(state)
    healthy = client.get("/healthz")
    assert healthy.status_code == 200
    body = healthy.json
    assert body["healthy"] and body["camera_alive"] and body["source_alive"] and body["status"] == "ok"
    assert body["last_frame_age_s"] == 0.0 and body["frames_total"] == 1
    clock.now += 6.0  # past stale_after_s = 5
    stale = client.get("/healthz")
    assert stale.status_code == 503 and stale.json["status"] == "stale"
    assert stale.json["last_frame_age_s"] == pytest.approx(6.0)


def test_healthz_503_when_the_source_ends_or_fails_while_the_page_serves(client, state):
    publish_frame(state)
    state.source_ended()
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz").json["status"] == "ended"
    assert client.get("/").status_code == 200
    state.source_ended(error="camera 0 was lost")
    body = client.get("/healthz").json
    assert body["status"] == "failed" and body["source_error"] == "camera 0 was lost"


def parse_exposition(text: str) -> dict[str, float]:
    """Samples of a Prometheus text exposition, checking the line grammar on the way."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge", "histogram"), line
            typed.add(name)
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_]+="[^"]*"\})? (\S+)', line)
        assert m, f"bad sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in typed or family in typed, f"sample before its TYPE: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    assert text.endswith("\n")
    return samples


def test_metrics_exposition_format(client, state):
    publish_frame(state)
    upload(client, b"not an image")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    s = parse_exposition(response.get_data(as_text=True))
    assert s["skinedge_frames_total"] == 1
    assert s['skinedge_errors_total{kind="upload"}'] == 1
    assert s["skinedge_model_loaded"] == 1 and s["skinedge_source_alive"] == 1
    for name in ("uncertain_total", "retake_total", "uploads_total", "captures_total"):
        assert f"skinedge_{name}" in s
    buckets = [v for k, v in s.items() if k.startswith("skinedge_classify_latency_seconds_bucket")]
    assert buckets == sorted(buckets), "histogram buckets must be cumulative"
    assert s['skinedge_classify_latency_seconds_bucket{le="+Inf"}'] == s["skinedge_classify_latency_seconds_count"]
    assert s["skinedge_classify_latency_seconds_count"] >= 1


def test_results_and_capture(client, state):
    assert client.post("/capture").status_code == 409  # no frame yet
    publish_frame(state)
    live = client.get("/results").json["live"]
    assert live["disclaimer"].startswith("Decision support only: not a diagnosis")
    assert len(live["top"]) == 3 and live["label"] == live["top"][0]["label"]
    captured = client.post("/capture")
    assert captured.status_code == 201
    record = captured.json
    assert record["kind"] == "capture" and "not a diagnosis" in record["disclaimer"]
    image = client.get("/" + record["image_url"])
    assert image.status_code == 200 and image.data[:3] == b"\xff\xd8\xff"
    assert [r["id"] for r in client.get("/results").json["recent"]] == [record["id"]]
    assert client.get("/results/999999.jpg").status_code == 404


def test_recent_results_are_bounded(client, state):
    publish_frame(state)
    ids = [client.post("/capture").json["id"] for _ in range(8)]
    recent = client.get("/results").json["recent"]
    assert [r["id"] for r in recent] == ids[::-1][:5]  # recent_size=5, newest first


def test_upload_a_good_photo(client):
    response = upload(client, jpeg_bytes(), name="IMG_0001.JPG")
    assert response.status_code == 200
    body = response.json
    assert body["kind"] == "upload" and body["label"] in ("nevus", "melanoma", "keratosis")
    assert "not a diagnosis" in body["disclaimer"] and len(body["top"]) == 3
    assert body["quality"]["retake"] is False


def test_upload_png_named_like_text_is_judged_by_content(client):
    import cv2

    ok, png = cv2.imencode(".png", lesion_image()[:, :, ::-1])
    assert upload(client, png.tobytes(), name="notes.txt").status_code == 200


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.jpg", "No photo was sent"),
        (b"%PDF-1.4 not a photo at all", "lesion.jpg", "not a photo the kiosk can read"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 200, "broken.jpg", "not a photo the kiosk can read"),
        (png_header(40_000, 40_000) + b"\0" * 100, "bomb.png", "40000x40000 pixels"),
        (png_header(64, 64) + b"\0" * 100, "cut.png", "does not decode"),
    ],
)
def test_bad_uploads_get_a_clear_400(client, data, name, message):
    response = upload(client, data, name=name)
    assert response.status_code == 400
    assert message in response.json["error"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_upload_without_a_file_field(client):
    response = client.post("/classify", data={"note": "hello"}, content_type="multipart/form-data")
    assert response.status_code == 400 and "No photo was sent" in response.json["error"]


def test_oversized_upload_is_413_json(state):
    client = create_app(state, KioskConfig(max_upload_bytes=100_000)).test_client()
    response = upload(client, b"\xff\xd8\xff" + b"\0" * 200_000)
    assert response.status_code == 413
    assert "larger than" in response.json["error"]


def test_the_live_view_is_the_newest_frame_and_never_an_old_one_as_if_current(state, clock):
    client = create_app(state, KioskConfig()).test_client()
    waiting = client.get("/frame.jpg")
    assert waiting.status_code == 200 and waiting.mimetype == "image/jpeg" and waiting.headers["X-Frame-Seq"] == "0"
    publish_frame(state)
    live = client.get("/frame.jpg")
    assert live.data[:3] == b"\xff\xd8\xff" and live.headers["X-Frame-Seq"] == "1" and live.data != waiting.data
    assert "no-store" in live.headers["Cache-Control"]
    clock.now += 60.0  # the camera stalled: the placeholder that says so, not the last frame
    stalled = client.get("/frame.jpg")
    assert stalled.headers["X-Frame-Seq"] == "0" and stalled.data not in (live.data, waiting.data)


def test_dns_rebinding_and_cross_site_posts_are_refused(client, state):
    publish_frame(state)
    assert client.get("/", headers={"Host": "evil.example:8080"}).status_code == 403
    assert client.get("/", headers={"Host": "127.0.0.1:8080"}).status_code == 200
    assert client.post("/capture", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/capture", headers={"Origin": "http://localhost"}).status_code == 201


def test_loopback_default_and_token_required_beyond_it(state):
    assert KioskConfig().host == "127.0.0.1"
    with pytest.raises(ValueError, match="needs an access token"):
        KioskConfig(host="0.0.0.0")
    with pytest.raises(ValueError, match="at least 16 characters"):
        KioskConfig(host="0.0.0.0", token="short")
    token = "s3cret-token-for-tests"
    app = create_app(state, KioskConfig(host="0.0.0.0", token=token))
    local = app.test_client()  # from 127.0.0.1: the kiosk screen, or a proxy on the device passing on a LAN client
    assert local.get("/", headers={"Host": "127.0.0.1:8080"}).status_code == 401  # a token set: local is no pass
    assert local.get("/metrics", headers={"Host": "127.0.0.1:8080"}).status_code == 401
    assert local.get("/healthz", headers={"Host": "localhost:8080"}).status_code == 503  # health checks: no frame yet
    assert local.get("/", headers={"Host": "evil.example:8080"}).status_code == 401  # DNS rebinding
    assert local.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    guess = local.get("/healthz?token=a-wrong-guess-of-the-token")  # exempt from the token, so never a cookie
    assert guess.status_code == 503 and "skinedge_token" not in guess.headers.get("Set-Cookie", "")
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "192.0.2.20"  # a computer on the clinic network
    for path in ("/", "/healthz", "/metrics", "/results", "/frame.jpg", "/static/kiosk.js"):
        denied = client.get(path, headers={"Host": "192.0.2.10:8080"})
        assert denied.status_code == 401, path
        assert "access token" in denied.json["error"]
    assert client.post("/capture").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    assert client.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/", headers={"Authorization": f"bearer  {token}"}).status_code == 200  # scheme: any case
    first = client.get(f"/?token={token}")
    assert first.status_code == 303 and first.headers["Location"] == "/"
    assert "HttpOnly" in first.headers["Set-Cookie"] and "SameSite=Strict" in first.headers["Set-Cookie"]
    assert client.get("/").status_code == 200  # the cookie now carries it
    onward = client.get(f"/results?token={token}&a=1%262")
    assert onward.status_code == 303 and onward.headers["Location"] == "/results?a=1%262"
    raw = {"PATH_INFO": "//evil.example/results", "QUERY_STRING": f"token={token}"}  # as waitress passes it
    assert client.get("/", environ_overrides=raw).headers["Location"] == "/evil.example/results"
    assert client.get("/healthz").status_code == 503  # authorised; just no frame yet


def _files_under(*folders) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


def test_nothing_is_written_to_disk_without_record(tmp_path, monkeypatch, state):
    import tempfile

    import werkzeug.formparser

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.chdir(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a temporary file was created")

    for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", refuse, raising=False)
    before = _files_under(tmp_path)
    client = create_app(state, KioskConfig()).test_client()
    publish_frame(state)
    big = jpeg_bytes(lesion_image(size=(1600, 1200)))  # over werkzeug's 500 KB in-memory limit
    big += b"\0" * max(0, 700_000 - len(big))  # trailing bytes after the JPEG end marker still decode
    assert upload(client, big).status_code == 200
    assert upload(client, jpeg_bytes()).status_code == 200
    assert client.post("/capture").status_code == 201
    assert _files_under(tmp_path) == before


def test_record_saves_captures_and_uploads_privately(tmp_path, state):
    folder = tmp_path / "records"
    client = create_app(state, KioskConfig(record_dir=folder)).test_client()
    publish_frame(state)
    assert client.post("/capture").status_code == 201
    assert upload(client, jpeg_bytes()).status_code == 200
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 4
    assert sum(n.endswith(".json") for n in names) == 2 and sum(n.endswith(".jpg") for n in names) == 2
    assert {"capture", "upload"} == {n.split("-")[2] for n in names}
    assert all((folder / n).stat().st_mode & 0o077 == 0 for n in names)


def test_state_without_model_reports_it(clock):
    client = create_app(LiveState(None, clock=clock)).test_client()
    body = client.get("/healthz").json
    assert body["model_loaded"] is False and body["healthy"] is False


def test_a_form_of_many_parts_or_a_long_text_field_is_not_called_a_large_photo(state):
    client = create_app(state, KioskConfig()).test_client()
    parts = {f"field{i}": "x" for i in range(20)}
    many = client.post("/classify", data={**parts, "image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                       content_type="multipart/form-data")  # fmt: skip
    long_text = client.post("/classify", data={"note": "x" * 700_000, "image": (io.BytesIO(jpeg_bytes()), "a.jpg")},
                            content_type="multipart/form-data")  # fmt: skip
    for answer in (many, long_text):
        assert answer.status_code == 413 and "too many parts or too long a text field" in answer.json["error"]


def test_wrong_tokens_are_rate_limited_and_refusals_summarised_in_the_log(state, caplog):
    import logging

    token = "s3cret-token-for-tests"
    app = create_app(state, KioskConfig(host="0.0.0.0", token=token))
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "192.0.2.66"
    with caplog.at_level(logging.WARNING, logger="edge.kiosk.web"):
        answers = [guesser.get("/", headers={"Authorization": f"Bearer guess-{n:04d}-guess-guess"}).status_code
                   for n in range(30)]  # fmt: skip
        assert answers[:10] == [401] * 10 and set(answers[10:]) == {429}
        # once locked out, even the right token waits: guessing gains nothing
        assert guesser.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 429
    lines = [r.getMessage() for r in caplog.records if "192.0.2.66" in r.getMessage()]
    assert len(lines) == 2, lines  # the first wrong token and the first lock-out, not 31 lines
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.67"
    assert other.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 200  # per address
