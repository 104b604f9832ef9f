from __future__ import annotations

import errno
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import edge.kiosk
from edge import app
from edge.model.classifier import DISCLAIMER
from edge.model.contract import ModelContract
from edge.model.modelfile import METADATA_NAME, embed_contract
from tests.edge.edge_synth import make_lesion, write_video

EDGE_DETECT = Path(sys.executable).with_name("edge-detect")
RECORD_KEYS = {
    "time", "source", "frame", "label", "confidence", "probabilities", "risk", "flagged", "uncertain",
    "verdict", "quality", "invoke_ms", "latency_ms", "disclaimer", "smoothed", "fps", "risk_threshold",
    "risk_text", "risk_threshold_text", "label_name", "not_lesion", "lesion_score",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _drop_cli_log_handler():
    yield
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "edge-detect"]


@pytest.fixture
def folder(tmp_path):
    """Three good images (one in a subfolder), one corrupt JPEG, one text file."""
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    for i, rel in enumerate(["a.jpg", "b.png", "sub/c.jpg"]):
        cv2.imwrite(str(d / rel), cv2.cvtColor(make_lesion(240, 320, seed=i), cv2.COLOR_RGB2BGR))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (d / "readme.txt").write_text("not an image")
    return d


def run(*args, **kwargs):
    return CliRunner().invoke(app.cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


def assert_one_sentence(result, code, *fragments):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.output
    error_lines = [line for line in result.stderr.splitlines() if line.startswith(("Error:", "Usage:"))]
    assert error_lines, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# --- results


def test_folder_prints_human_lines_and_a_summary(tiny_tflite, folder):
    result = run("--model", tiny_tflite, "--source", folder)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    per_image = [line for line in lines if line.startswith(str(folder))]
    assert len(per_image) == 3
    for line in per_image:
        assert "%" in line and "malignancy risk" in line and "not a diagnosis" in line
        assert any(label in line for label in ("nevus", "melanoma", "keratosis"))
    assert "3 classified, 2 skipped" in result.stdout
    assert "broken.jpg: not a readable image" in result.stdout and "readme.txt" in result.stdout
    assert "skipped" in result.stderr  # logged as it happens, too


def test_json_lines_schema(tiny_tflite, folder):
    result = run("--model", tiny_tflite, "--source", folder, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # stdout is JSON only
    records = [rec for rec in lines if "skipped" not in rec]
    skipped = {Path(rec["source"]).name: rec["skipped"] for rec in lines if "skipped" in rec}
    assert len(records) == 3 and set(skipped) == {"broken.jpg", "readme.txt"}
    assert "not a readable image" in skipped["broken.jpg"]
    for rec in records:
        assert rec["label_name"] == rec["label"]  # isic9 labels are names already
        assert set(rec) == RECORD_KEYS
        assert rec["disclaimer"] == DISCLAIMER
        assert rec["source"].startswith(str(folder))
        assert set(rec["probabilities"]) == {"nevus", "melanoma", "keratosis"}
        assert sum(rec["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert rec["label"] == max(rec["probabilities"], key=rec["probabilities"].get)
        assert rec["risk"] == pytest.approx(rec["probabilities"]["melanoma"], abs=1e-3)
        assert rec["flagged"] == (rec["risk"] >= 0.3)
        assert {"retake", "issues", "blur", "brightness"} <= set(rec["quality"])
        assert rec["invoke_ms"] > 0 and rec["latency_ms"] >= rec["invoke_ms"]
    assert "3 classified" in result.stderr  # the summary stays off stdout


def test_inspect_prints_the_contract(tiny_tflite, tiny_contract):
    result = run("--inspect", "--model", tiny_tflite)
    assert result.exit_code == 0
    shown = ModelContract.from_json(result.stdout)
    assert len(shown.model_sha256) == 64 and shown.replace(model_sha256="") == tiny_contract


def test_benchmark_prints_percentiles_and_fps(tiny_tflite, folder):
    result = run("--model", tiny_tflite, "--source", folder / "a.jpg", "--benchmark", 7)
    assert result.exit_code == 0, result.output
    assert (
        "| invoke |" in result.stdout
        and "| frame path" in result.stdout
        and "| period between results |" in result.stdout
    )
    assert "p50" in result.stdout and "p99" in result.stdout
    assert "7 frames" in result.stdout and "FPS" in result.stdout
    result = run("--model", tiny_tflite, "--source", folder, "--benchmark", 5, "--json")
    bench = json.loads(result.stdout)["benchmark"]
    assert bench["frames"] == 5 and bench["fps"] > 0
    assert bench["invoke_ms"]["p50"] <= bench["invoke_ms"]["p99"]
    assert bench["frame_ms"]["p50"] >= bench["invoke_ms"]["p50"]
    assert bench["period_ms"]["p50"] > 0 and bench["overhead"] is not None
    serial = json.loads(run("--model", tiny_tflite, "--source", folder, "--benchmark", 3, "--json", "--serial").stdout)
    assert serial["benchmark"]["frames"] == 3


def test_save_writes_annotated_frames(tiny_tflite, folder, tmp_path):
    out = tmp_path / "annotated"
    result = run("--model", tiny_tflite, "--source", folder, "--save", out)
    assert result.exit_code == 0, result.output
    saved = sorted(out.iterdir())
    assert [p.name for p in saved] == ["00000_a.jpg", "00001_b.jpg", "00004_c.jpg"]
    image = cv2.imread(str(saved[0]))
    original = cv2.imread(str(folder / "a.jpg"))
    assert image.shape == original.shape and not np.array_equal(image, original)


def test_demo_falls_back_to_the_sample_images(tiny_tflite, folder, monkeypatch):
    monkeypatch.setattr(app, "DEFAULT_MODEL", tiny_tflite)
    monkeypatch.setattr(app, "DEMO_IMAGES", folder)
    monkeypatch.setattr(app, "_camera_present", lambda _index: False)
    result = run("--demo")
    assert result.exit_code == 0, result.output
    assert f"classifying the sample images in {folder}" in result.stderr
    assert "3 classified" in result.stdout
    monkeypatch.setattr(app, "DEMO_IMAGES", folder / "absent")
    assert_one_sentence(run("--demo"), 2, "no camera found", "--source")


def test_serve_delegates_to_the_web_page_when_it_exists(tiny_tflite, monkeypatch):
    calls = []
    fake = types.ModuleType("edge.kiosk.web")
    fake.serve = lambda classifier, source, host, port, **_options: calls.append(
        (classifier.contract.arch, source, host, port)
    )
    monkeypatch.setitem(sys.modules, "edge.kiosk.web", fake)
    monkeypatch.setattr(edge.kiosk, "web", fake, raising=False)
    result = run("--model", tiny_tflite, "--camera", "--serve", "0.0.0.0:8080")
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and calls[0][0] == "tiny_cnn" and calls[0][2:] == ("0.0.0.0", 8080)
    assert calls[0][1].live  # an (unopened) camera source

    def refuse(*_args, **_kwargs):
        raise ValueError("listening on 0.0.0.0 needs an access token")

    fake.serve = refuse
    assert_one_sentence(run("--model", tiny_tflite, "--camera", "--serve", "0.0.0.0:8080"), 2, "needs an access token")

    bare = types.ModuleType("edge.kiosk.web")
    monkeypatch.setitem(sys.modules, "edge.kiosk.web", bare)
    monkeypatch.setattr(edge.kiosk, "web", bare, raising=False)
    assert_one_sentence(run("--model", tiny_tflite, "--camera", "--serve", "0.0.0.0:8080"), 2, "not available")
    assert run("--model", tiny_tflite, "--camera", "--serve", "nonsense").exit_code == 2


# --- faults: one sentence, no traceback, the right exit code


def test_missing_default_model_says_how_to_get_one(tmp_path, monkeypatch, folder):
    monkeypatch.setattr(app, "DEFAULT_MODEL", tmp_path / "models" / "isic8_int8.tflite")
    result = run("--source", folder)
    assert_one_sentence(result, 2, "no model at", "train and convert one, or pass --model")


def test_missing_explicit_model(tmp_path, folder):
    assert_one_sentence(run("--model", tmp_path / "nope.tflite", "--source", folder), 2, "no model at")


def test_corrupt_and_wrong_models_are_unusable(tiny_tflite, tmp_path, folder):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(os.urandom(2048))
    assert_one_sentence(run("--model", garbage, "--source", folder), 2, "not a TFLite model")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny_tflite.read_bytes()[:600])
    assert run("--model", truncated, "--source", folder).exit_code == 2
    jpeg = tmp_path / "photo.tflite"
    jpeg.write_bytes((folder / "a.jpg").read_bytes())
    assert_one_sentence(run("--model", jpeg, "--source", folder), 2, "not a TFLite model")
    assert_one_sentence(run("--inspect", "--model", jpeg), 2, "not a TFLite model")


def test_non_classifier_and_contractless_models(tiny_tflite, tiny_contract, tmp_path, folder):
    segmenter = tmp_path / "segment.tflite"
    segmenter.write_bytes(embed_contract(tiny_tflite.read_bytes(), tiny_contract.replace(task="segment")))
    assert_one_sentence(run("--model", segmenter, "--source", folder), 2, "segment model, not a classifier")

    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tiny_tflite.read_bytes()), 0)
    model.metadata = [m for m in model.metadata if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(bytes(builder.Output()))
    assert_one_sentence(run("--model", plain, "--source", folder), 2, "carries no skinedge contract")


def test_bad_usage(tiny_tflite, tmp_path, folder):
    assert_one_sentence(run("--model", tiny_tflite), 2, "pass --camera or --source")
    assert_one_sentence(run("--model", tiny_tflite, "--camera", "--source", folder), 2, "not both")
    assert_one_sentence(run("--model", tiny_tflite, "--source", tmp_path / "absent"), 2, "does not exist")
    assert_one_sentence(run("--model", tiny_tflite, "--source", folder, "--resolution", "big"), 2, "WIDTHxHEIGHT")


def test_only_broken_files_is_a_failed_run(tiny_tflite, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"nope")
    assert_one_sentence(run("--model", tiny_tflite, "--source", tmp_path), 1, "no frame could be classified")


def test_no_camera_is_a_clear_runtime_failure(tiny_tflite, monkeypatch):
    monkeypatch.setattr("edge.capture.sources.picamera_status", lambda: (False, "picamera2 is not installed"))
    result = run("--model", tiny_tflite, "--camera", "--camera-index", 63)
    assert_one_sentence(result, 1, "no camera at OpenCV device index 63")


def test_display_without_a_gui_says_so(tiny_tflite, folder, monkeypatch):
    from edge.run import sinks

    monkeypatch.setattr(sinks, "gui_available", lambda: False)
    assert_one_sentence(run("--model", tiny_tflite, "--source", folder, "--display"), 2, "opencv-python-headless")
    monkeypatch.setattr(sinks, "gui_available", lambda: True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert_one_sentence(run("--model", tiny_tflite, "--source", folder, "--display"), 2, "needs a screen")


def test_disk_full_on_save(tiny_tflite, folder, tmp_path, monkeypatch):
    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    result = run("--model", tiny_tflite, "--source", folder, "--save", tmp_path / "out")
    assert_one_sentence(result, 1, "cannot save annotated frames", "No space left on device")


# --- the installed command, for real


def _installed() -> Path:
    if not EDGE_DETECT.exists():
        pytest.skip(f"{EDGE_DETECT} is not installed (pip install -e .)")
    return EDGE_DETECT


def test_installed_command_classifies_every_frame_of_a_video(tiny_tflite, tmp_path):
    video = write_video(tmp_path / "camera-standin.avi", n=12)
    proc = subprocess.run(
        [_installed(), "--model", tiny_tflite, "--source", video, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(12))  # files drop no frames
    assert all(r["source"] == str(video) for r in records)
    assert [r["smoothed"] for r in records] == [False] + [True] * 11  # a video is smoothed like a camera
    assert "Traceback" not in proc.stderr


def test_sigterm_ends_a_run_cleanly_within_a_second(tiny_tflite, tmp_path):
    video = write_video(tmp_path / "long.avi", n=100, size=(160, 120), fps=10.0)  # 10 s in real time
    proc = subprocess.Popen(
        [_installed(), "--model", tiny_tflite, "--source", video, "--realtime", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert json.loads(first)["frame"] == 0
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
        stdout, stderr = proc.communicate()
    assert proc.returncode in (0, 143), stderr
    assert elapsed < 1.0, f"took {elapsed:.2f} s to stop"
    assert "Traceback" not in stderr and "SIGTERM" in stderr
    for line in stdout.splitlines():  # whatever was printed is whole JSON lines
        json.loads(line)
