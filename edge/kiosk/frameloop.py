"""The kiosk's frame loop: a background thread from the camera (or video) to ``edge.kiosk.live.LiveState``.

Each frame goes through :func:`edge.run.pipeline.iter_results` (quality gates, the model, smoothing),
gets the overlay drawn (:func:`edge.image.overlay.draw_overlay`), is encoded once as JPEG for every viewer
and published. The frame times it publishes are what ``edge.kiosk.service.Supervisor`` watches: a stalled
camera goes stale and the watchdog pings stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import numpy as np

from edge.capture.frames import Frame
from edge.image.overlay import draw_overlay
from edge.image.quality import QualityThresholds
from edge.kiosk.live import LiveState, encode_jpeg
from edge.model.classifier import Classifier, Prediction
from edge.run.pipeline import Result, iter_results

__all__ = ["Annotate", "FrameLoop"]

log = logging.getLogger(__name__)

Annotate = Callable[[np.ndarray, Prediction], np.ndarray]


class FrameLoop(threading.Thread):
    """Background thread: frames in, classified and annotated frames published into ``state``.

    Classification is :func:`edge.run.pipeline.iter_results` (quality gates, the model, smoothing over
    consecutive frames) with this loop's own ``classifier``; uploads use the state's.

    Args:
        state: where results go; its stop event ends the loop.
        classifier: the model for live frames (used by this thread only).
        source: an ``edge.capture.sources.Source`` (opened and closed by the loop) or any iterable of frames.
        annotate: draws the overlay; ``edge.image.overlay.draw_overlay`` when None.
        max_fps: upper bound on frames classified per second (saves CPU on video files and fast
            cameras); 0 for no bound.
        smooth: average probabilities over consecutive frames (``edge.run.postprocess``).
        quality_gate: run the quality gates (a failed gate reads "retake").
        jpeg_quality: quality of the streamed JPEGs (1-100).
        stream_width: streamed frames are shrunk to at most this many pixels wide.
    """

    def __init__(
        self,
        state: LiveState,
        classifier: Classifier,
        source: Iterable[Frame],
        *,
        annotate: Annotate | None = None,
        max_fps: float = 10.0,
        smooth: bool = True,
        quality_gate: bool = True,
        jpeg_quality: int = 80,
        stream_width: int = 800,
    ) -> None:
        super().__init__(name="frame-loop", daemon=True)
        self.state = state
        self.classifier = classifier
        self.source = source
        self.annotate = annotate or self._draw
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.smooth = smooth
        self.thresholds = QualityThresholds() if quality_gate else None
        self.jpeg_quality = jpeg_quality
        self.stream_width = stream_width

    def _draw(self, image: np.ndarray, prediction: Prediction) -> np.ndarray:
        c = self.classifier.contract
        return draw_overlay(
            image, prediction, crop_fraction=c.crop_fraction, risk_threshold=c.risk_threshold, numbers=False
        )

    def stop(self) -> None:
        """Ask the loop to end (thread-safe); the source is released by the loop thread."""
        self.state.stop()
        request_stop = getattr(self.source, "request_stop", None)
        if request_stop is not None:
            request_stop()

    def run(self) -> None:
        try:
            if isinstance(self.source, AbstractContextManager):
                with self.source:
                    self._consume()
            else:
                self._consume()
        except (OSError, ValueError, RuntimeError) as exc:  # a lost camera, an unreadable video
            log.error("the frame source failed: %s", exc)
            self.state.source_ended(error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:  # a bug: keep the page up, report it, let health turn 503
            log.exception("the frame loop crashed")
            self.state.source_ended(error=f"internal error ({type(exc).__name__})")
        else:
            if not self.state.stopping:
                log.warning("the frame source ended; the page says there is no live result")
                self.state.source_ended()

    def _consume(self) -> None:
        started = False
        tick = time.monotonic()
        results = iter_results(
            self.classifier,
            self.source,
            thresholds=self.thresholds,
            smooth=None if self.smooth else False,
            stop=self.state.stop_event,
        )
        for result in results:
            if not started:
                self.state.source_started(result.frame.origin)
                started = True
            self._publish(result)
            spare = self.min_interval - (time.monotonic() - tick)
            if spare > 0 and self.state.wait_stop(spare):
                return
            tick = time.monotonic()

    def _publish(self, result: Result) -> None:
        frame, prediction = result.frame, result.prediction
        self.state.metrics.observe_latency(prediction.total_ms / 1000.0)
        self.state.count_outcome(prediction)
        try:
            jpeg = encode_jpeg(self.annotate(frame.image, prediction), self.jpeg_quality, self.stream_width)
        except ValueError as exc:  # an odd frame: skip it, keep going
            self.state.metrics.error("frame")
            log.warning("skipped frame %s#%s: %s", frame.origin, frame.index, exc)
            return
        if self.state.publish(frame.image, prediction, jpeg, frame.origin).seq == 1:
            log.info("first frame in from %s", frame.origin)
