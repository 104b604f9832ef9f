"""The frame loop as generator stages: source -> quality gate -> classify -> smoothing -> sinks.

:func:`iter_results` is the reusable core: the CLI, the kiosk web page and the benchmarks all pull
:class:`Result` records from it. It holds no resources; open the source with ``with`` around it.

    >>> with open_source(camera=True, stop=stop) as frames:
    ...     for result in iter_results(classifier, frames, stop=stop):
    ...         show(result.frame.image, result.prediction)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from edge.capture.background import background
from edge.capture.sources import Frame
from edge.image.preprocess import preprocess
from edge.image.quality import QualityThresholds, assess_quality
from edge.model.classifier import Classifier, Prediction, calibrated_probabilities
from edge.model.contract import ModelContract
from edge.model.segment import Lesion, Segmenter, lesion_input
from edge.run.postprocess import Smoother, SmoothingConfig

__all__ = [
    "FpsMeter",
    "Result",
    "Sink",
    "classify_frames",
    "iter_results",
    "prepare_frames",
    "run_sinks",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Result:
    """One classified frame.

    Attributes:
        frame: the frame as it came from the source (RGB uint8 HWC).
        prediction: calibrated (and, for camera streams, smoothed) probabilities, risk, flags and the
            quality dict (``prediction.quality``).
        fps: results per second over the last few frames (0.0 for the first).
        smoothed: the probabilities are a moving average over more than this frame.
        lesion: the segmenter's finding (outline, area, border, crop) when one ran, else None.
    """

    frame: Frame
    prediction: Prediction
    fps: float = 0.0
    smoothed: bool = False
    lesion: Lesion | None = None

    @property
    def quality(self) -> dict[str, Any]:
        return self.prediction.quality

    @property
    def latency_ms(self) -> float:
        """Milliseconds from taking the frame from the source to the finished prediction."""
        return self.prediction.total_ms

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready record: time, source, frame, the prediction's fields and the disclaimer."""
        stamp = datetime.fromtimestamp(self.frame.timestamp, tz=timezone.utc)
        record = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": self.frame.origin,
            "frame": self.frame.index,
            **self.prediction.to_dict(),
            "smoothed": self.smoothed,
            "fps": round(self.fps, 2),
        }
        if self.lesion is not None:
            record["lesion"] = self.lesion.to_dict()
        return record


class Sink(Protocol):
    """Anything that takes results: JSON lines, a window, a folder of annotated frames."""

    def __call__(self, result: Result) -> None: ...


class FpsMeter:
    """Rate of calls to :meth:`tick` over the last ``window`` of them, in events per second."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float | None = None) -> float:
        self._times.append(time.perf_counter() if now is None else now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


def _until(frames: Iterable[Frame], stop: threading.Event | None) -> Iterator[Frame]:
    for frame in frames:
        if stop is not None and stop.is_set():
            return
        yield frame


def prepare_frames(
    frames: Iterable[Frame],
    contract: ModelContract,
    thresholds: QualityThresholds | None = None,
    segmenter: Segmenter | None = None,
) -> Iterator[tuple[Frame, np.ndarray, dict[str, Any], float, Lesion | None]]:
    """Stage: preprocess each frame and attach its quality verdict (and, with a segmenter, the lesion).

    Yields (frame, model input, quality dict, ``perf_counter`` time the frame arrived, lesion or
    None). The quality gate measures the guide box; when the model input holds at least
    ``analysis_size`` pixels it *is* the guide box, so it is measured there (saving a second crop
    and resize of the full frame), otherwise on the frame. ``thresholds=None`` turns the gate off
    (an empty quality dict). With a ``segmenter`` the model input becomes the found lesion's square
    crop (it stays the centre crop when none is found); the gate still judges the guide box.
    """
    for frame in frames:
        start = time.perf_counter()
        model_input = preprocess(frame.image, contract)
        if thresholds is None:
            quality: dict[str, Any] = {}
        elif contract.image_size >= thresholds.analysis_size:
            quality = assess_quality(model_input, 1.0, thresholds)
        else:
            quality = assess_quality(frame.image, contract.crop_fraction, thresholds)
        lesion = segmenter.segment(frame.image) if segmenter is not None else None
        if lesion is not None and lesion.found:
            model_input = lesion_input(frame.image, lesion, contract)
        yield frame, model_input, quality, start, lesion


def classify_frames(
    items: Iterable[tuple[Frame, np.ndarray, dict[str, Any], float, Lesion | None]],
    classifier: Classifier,
    smoother: Smoother | None = None,
) -> Iterator[Result]:
    """Stage: classify each prepared frame; smooth the probabilities when a smoother is given.

    The smoother restarts on every frame that fails the quality gate, and such a frame's own
    probabilities are reported unsmoothed.
    """
    fps = FpsMeter()
    for frame, model_input, quality, start, lesion in items:
        out = classifier.run(model_input)
        probs = calibrated_probabilities(out.logits, classifier.contract.temperature)
        not_lesion = classifier.not_a_lesion(out.lesion_score)
        smoothed = False
        if smoother is not None:
            if quality.get("retake") or not_lesion:
                smoother.reset("the quality gate failed" if quality.get("retake") else "not a skin lesion")
            else:
                probs = smoother.update(probs, frame.timestamp)
                smoothed = smoother.count > 1
        prediction = classifier.prediction_from(probs, out.invoke_ms, start, quality, out.lesion_score)
        yield Result(frame, prediction, fps.tick(), smoothed, lesion)


def iter_results(
    classifier: Classifier,
    source: Iterable[Frame],
    *,
    thresholds: QualityThresholds | None = QualityThresholds(),  # noqa: B008 - frozen, immutable
    smooth: bool | None = None,
    smoothing: SmoothingConfig | None = None,
    stop: threading.Event | None = None,
    limit: int | None = None,
    pipelined: bool = False,
    segmenter: Segmenter | None = None,
) -> Iterator[Result]:
    """Classify the frames of ``source`` one by one and yield a :class:`Result` for each.

    Args:
        classifier: the model and its contract.
        source: an opened :class:`edge.capture.sources.Source` or any iterable of frames.
        thresholds: quality-gate limits; None turns the gate off.
        smooth: average probabilities over consecutive frames; None does so when the source says
            its frames are ``sequential`` (cameras, videos), never across separate image files.
        smoothing: the moving-average settings (defaults when None).
        stop: when set, the loop ends before the next frame.
        limit: stop after this many results.
        pipelined: prepare (decode, preprocess, quality-check) the next frame in a worker thread
            while the model runs on the current one (more frames per second when a core is free;
            results then trail the source by up to two frames); False runs every step in this thread.
        segmenter: find the lesion first and classify its crop (runs in the prepare stage).
    """
    if smooth is None:
        smooth = bool(getattr(source, "sequential", False))
    smoother = Smoother(smoothing) if smooth else None
    frames = _until(source, stop)
    prepared = prepare_frames(frames, classifier.contract, thresholds, segmenter)
    if pipelined:  # live sources: only the newest prepared frame waits, so latency stays one frame
        prepared = background(prepared, latest=bool(getattr(source, "live", False)), stop=stop, name="prepare")
    results = classify_frames(prepared, classifier, smoother)
    for n, result in enumerate(results, start=1):
        yield result
        if limit is not None and n >= limit:
            return


def run_sinks(results: Iterable[Result], sinks: Sequence[Sink]) -> Iterator[Result]:
    """Stage: hand every result to each sink in turn, then pass it on."""
    for result in results:
        for sink in sinks:
            sink(result)
        yield result
