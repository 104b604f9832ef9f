from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from edge.capture.background import background
from edge.capture.frames import Frame
from edge.model.classifier import DISCLAIMER, Classifier, Inference
from edge.run.pipeline import Result, iter_results, run_sinks
from edge.run.stopping import StopSignals
from tests.edge.edge_synth import make_lesion

RECORD_KEYS = {
    "time", "source", "frame", "label", "confidence", "probabilities", "risk", "flagged", "uncertain",
    "verdict", "quality", "invoke_ms", "latency_ms", "disclaimer", "smoothed", "fps", "risk_threshold",
    "risk_text", "risk_threshold_text", "label_name", "not_lesion", "lesion_score",
}  # fmt: skip


@pytest.fixture(scope="module")
def classifier(tiny_tflite):
    return Classifier(tiny_tflite)


def _frames(images, origin="camera:0", t0=1_000.0, dt=0.1):
    return [Frame(img, t0 + i * dt, origin, i) for i, img in enumerate(images)]


class SequentialFrames(list):
    sequential = True


def _scripted(classifier, monkeypatch, outputs):
    """Make the classifier return ``outputs`` (probability vectors) one after another."""
    temperature = classifier.contract.temperature
    it = iter(np.log(np.asarray(o, dtype=np.float64)) * temperature for o in outputs)  # logits giving them
    monkeypatch.setattr(classifier, "run", lambda _x: Inference(next(it), 0.0))


def test_results_carry_frame_prediction_and_quality(classifier):
    good, blank = make_lesion(240, 320), np.full((240, 320, 3), 128, np.uint8)
    results = list(iter_results(classifier, _frames([good, blank], origin="a.jpg")))
    assert [r.frame.index for r in results] == [0, 1]
    assert results[0].quality["retake"] is False and results[1].quality["retake"] is True
    assert results[1].prediction.verdict.startswith("retake: ")
    p = results[0].prediction
    assert sum(p.probabilities.values()) == pytest.approx(1.0)
    assert p.invoke_ms > 0 and results[0].latency_ms >= p.invoke_ms
    record = results[0].to_record()
    assert set(record) == RECORD_KEYS
    assert record["disclaimer"] == DISCLAIMER and record["source"] == "a.jpg"
    assert record["time"].endswith("Z")
    json.dumps(record)  # JSON-ready


def test_no_quality_gate_and_limit(classifier):
    blank = np.full((240, 320, 3), 128, np.uint8)
    results = list(iter_results(classifier, _frames([blank] * 5), thresholds=None, limit=3))
    assert len(results) == 3 and all(r.quality == {} for r in results)


def test_sequential_sources_are_smoothed_and_reset_on_retake(classifier, monkeypatch):
    good, blank = make_lesion(240, 320), np.full((240, 320, 3), 128, np.uint8)
    _scripted(classifier, monkeypatch, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])
    frames = SequentialFrames(_frames([good, good, blank, good]))
    results = list(iter_results(classifier, frames))
    p = [r.prediction.probabilities for r in results]
    assert [r.smoothed for r in results] == [False, True, False, False]
    assert p[1]["nevus"] == pytest.approx(0.35 * 0.1 + 0.65 * 0.9)  # the default alpha 0.35
    assert p[2]["keratosis"] == pytest.approx(0.6)  # a retake frame: its own probabilities
    assert p[3]["keratosis"] == pytest.approx(0.8)  # the average restarted after the retake


def test_files_are_never_smoothed_and_smoothing_can_be_refused(classifier, monkeypatch):
    good = make_lesion(240, 320)
    _scripted(classifier, monkeypatch, [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]] * 2)
    files = list(iter_results(classifier, _frames([good, good], origin="x.jpg")))  # a plain list
    assert files[1].prediction.label == "melanoma" and not files[1].smoothed
    refused = list(iter_results(classifier, SequentialFrames(_frames([good, good])), smooth=False))
    assert refused[1].prediction.label == "melanoma"


def test_uncertain_follows_the_contract(classifier, monkeypatch):
    good = make_lesion(240, 320)
    _scripted(classifier, monkeypatch, [[0.45, 0.3, 0.25], [0.7, 0.2, 0.1]])  # uncertain_below = 0.5
    a, b = iter_results(classifier, _frames([good, good], origin="x.jpg"))
    assert a.prediction.uncertain and a.prediction.verdict == "uncertain"
    assert not b.prediction.uncertain and b.prediction.verdict == "nevus"


def test_stop_event_ends_the_loop_before_the_next_frame(classifier):
    stop = threading.Event()
    frames = _frames([make_lesion(120, 160)] * 10)
    got = []
    for r in iter_results(classifier, frames, stop=stop):
        got.append(r)
        stop.set()
    assert len(got) == 1


def test_sinks_see_every_result(classifier):
    seen: list[Result] = []
    results = run_sinks(iter_results(classifier, _frames([make_lesion(120, 160)] * 3)), [seen.append])
    assert [r.frame.index for r in results] == [0, 1, 2] and len(seen) == 3


def test_signal_handler_sets_the_stop_flag_and_restores():
    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    signals = StopSignals(stop).install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 1
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.is_set()
    finally:
        signals.restore()
    assert signal.getsignal(signal.SIGTERM) is before


def test_pipelined_and_serial_runs_agree(classifier):
    frames = _frames([make_lesion(240, 320, seed=i) for i in range(4)], origin="x.jpg")
    a = [r.prediction.to_dict() for r in iter_results(classifier, frames, pipelined=True)]
    b = [r.prediction.to_dict() for r in iter_results(classifier, frames, pipelined=False)]
    strip = ("invoke_ms", "latency_ms")
    assert [{k: v for k, v in d.items() if k not in strip} for d in a] == [
        {k: v for k, v in d.items() if k not in strip} for d in b
    ]


def test_background_keeps_order_or_only_the_newest():
    def slow_numbers(n, delay):
        for i in range(n):
            time.sleep(delay)
            yield i

    assert list(background(slow_numbers(30, 0.0))) == list(range(30))
    newest = []
    for i in background(slow_numbers(40, 0.002), latest=True):
        newest.append(i)
        time.sleep(0.015)
    assert newest == sorted(newest) and newest[-1] == 39 and len(newest) < 30


def test_background_passes_errors_on_and_stops_when_closed():
    def failing():
        yield 1
        raise OSError("camera unplugged")

    it = background(failing())
    assert next(it) == 1
    with pytest.raises(OSError, match="unplugged"):
        next(it)

    def endless():
        i = 0
        while True:
            i += 1
            yield i

    gen = background(endless(), name="endless-test")
    assert next(gen) == 1
    gen.close()
    time.sleep(0.1)
    assert not any(t.name == "endless-test" for t in threading.enumerate())


def test_risk_figures_keep_their_order_as_read():
    from edge.model.classifier import risk_percentages

    assert risk_percentages(0.2782, 0.2832) == ("27.8%", "28.3%")  # not "28%" vs "28%" with no flag
    assert risk_percentages(0.2832, 0.2832) == ("28%", "28%")  # flagged at or above: equal reads true
    assert risk_percentages(0.61, 0.28) == ("61%", "28%")
    assert risk_percentages(0.28349, 0.2835) == ("28.35%", "28.35%")  # beyond two decimals: as close as shown


def test_a_coin_flip_between_two_classes_reads_uncertain(classifier, monkeypatch):
    good = make_lesion(240, 320)
    _scripted(classifier, monkeypatch, [[0.49, 0.49, 0.02], [0.62, 0.36, 0.02]])
    a, b = iter_results(classifier, _frames([good, good], origin="x.jpg"))
    assert a.prediction.uncertain and a.prediction.verdict == "uncertain"  # 49 / 49: no confident headline
    assert not b.prediction.uncertain  # 26 points ahead of the runner-up
