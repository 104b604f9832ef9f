"""The kiosk's shared state: the newest classified frame, counters, and the results the user asked for.

``edge.kiosk.frameloop.FrameLoop`` (a thread) publishes the annotated JPEG, the latest
:class:`~edge.model.classifier.Prediction` and the frame time into ``LiveState``; the web handlers
(``edge.kiosk.web``) read it from their own threads. Captures and uploads are kept in memory only, in a
bounded deque under unguessable ids, each forgotten ``recent_ttl_s`` after it was made (or on the page's
Clear button), whatever came after it, and shown only to the browser that asked for it, so the next person
at the kiosk, or another client on the network, sees nothing of the last patient's photos.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import cv2
import numpy as np

from edge.image.quality import assess_quality
from edge.kiosk.metrics import Metrics
from edge.model.classifier import Classifier, Prediction
from edge.model.contract import readable_label

__all__ = ["LiveFrame", "LiveState", "RecentResults", "ResultRecord", "encode_jpeg"]

log = logging.getLogger(__name__)


def encode_jpeg(rgb: np.ndarray, quality: int = 80, max_width: int | None = None) -> bytes:
    """Encode an RGB uint8 HWC image as JPEG, first shrunk to ``max_width`` pixels wide if wider."""
    if max_width and rgb.shape[1] > max_width:
        height = max(1, round(rgb.shape[0] * max_width / rgb.shape[1]))
        rgb = cv2.resize(rgb, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a {rgb.shape} image as JPEG")
    return buf.tobytes()


@dataclass(frozen=True, eq=False)
class LiveFrame:
    """The newest classified frame: raw RGB pixels, its prediction and the annotated JPEG."""

    seq: int
    image: np.ndarray
    prediction: Prediction
    jpeg: bytes
    origin: str
    monotonic: float


@dataclass(frozen=True, eq=False)
class ResultRecord:
    """A result the user asked for: a captured frame or an uploaded photo."""

    id: str
    kind: str  # "capture" or "upload"
    time: float  # wall-clock seconds
    prediction: Prediction
    jpeg: bytes  # the frozen frame or a thumbnail of the photo
    owner: str = ""  # the browser session that asked for it; only it sees the record
    made: float = 0.0  # monotonic seconds: the record expires on its own clock

    def to_dict(self) -> dict[str, Any]:
        out = self.prediction.to_dict()
        out.update(
            id=self.id,
            kind=self.kind,
            time=datetime.fromtimestamp(self.time, timezone.utc).isoformat(timespec="seconds"),
            top=top3(self.prediction),
            image_url=f"results/{self.id}.jpg",
        )
        return out


def top3(prediction: Prediction) -> list[dict[str, Any]]:
    """The three likeliest classes, each with the name a person reads."""
    return [{"label": name, "name": readable_label(name), "probability": round(p, 4)} for name, p in prediction.top(3)]


class RecentResults:
    """The captures and uploads users asked for, newest first. Each is forgotten ``ttl_s`` after it was
    made, on its own clock, and listed only to its ``owner`` (a browser session). Thread-safe."""

    def __init__(self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._records: deque[ResultRecord] = deque(maxlen=size)
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()

    def add(self, kind: str, prediction: Prediction, jpeg: bytes, owner: str = "") -> ResultRecord:
        record = ResultRecord(secrets.token_urlsafe(16), kind, time.time(), prediction, jpeg, owner, self._clock())
        with self._lock:
            self._expire()
            self._records.appendleft(record)
        return record

    def _expire(self) -> None:  # with the lock held
        now = self._clock()
        while self._records and now - self._records[-1].made > self._ttl_s:  # the oldest are at the right
            self._records.pop()

    def all(self, owner: str | None = None) -> list[ResultRecord]:
        """The kept records, newest first: ``owner``'s only, or every one when None."""
        with self._lock:
            self._expire()
            return [r for r in self._records if owner is None or (owner and secrets.compare_digest(r.owner, owner))]

    def get(self, record_id: str, owner: str | None = None) -> ResultRecord | None:
        if not record_id.isascii():
            return None
        return next((r for r in self.all(owner) if secrets.compare_digest(r.id, record_id)), None)

    def clear(self, owner: str | None = None) -> int:
        """Forget ``owner``'s results (every one when None) now; returns how many there were."""
        with self._lock:
            gone = [r for r in self._records if owner is None or r.owner == owner]
            for r in gone:
                self._records.remove(r)
        return len(gone)


class LiveState:
    """Thread-safe state shared by the frame loop and the web handlers.

    Args:
        classifier: the model for uploads (thread-safe; the kiosk shares the frame loop's).
        recent_size, recent_ttl_s: of ``results``, the captures and uploads ``/results`` keeps.
        stale_after_s: a source whose newest frame is older than this is unhealthy.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        classifier: Classifier | None,
        *,
        recent_size: int = 20,
        recent_ttl_s: float = 120.0,
        stale_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.classifier = classifier
        self.metrics = Metrics()
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._live: LiveFrame | None = None
        self._seq = 0
        self._frame_times: deque[float] = deque(maxlen=30)
        self._source = "none"
        self._source_state = "starting"  # starting -> live -> ended | failed
        self._source_error = ""
        self.results = RecentResults(recent_size, recent_ttl_s, clock)

    # --- the model -------------------------------------------------------------------------------
    @property
    def model_loaded(self) -> bool:
        return self.classifier is not None

    def classify(self, image: np.ndarray, quality: dict[str, Any] | None = None) -> Prediction:
        """Classify one RGB image (serialised with every other caller) and count the outcome."""
        if self.classifier is None:
            raise RuntimeError("no model is loaded")
        start = time.perf_counter()
        prediction = self.classifier.classify(image, quality=quality)
        self.metrics.observe_latency(time.perf_counter() - start)
        self.count_outcome(prediction)
        return prediction

    def assess_and_classify(self, image: np.ndarray) -> Prediction:
        """The quality gates, then the model; a failed gate still classifies but reads "retake"."""
        crop = self.classifier.contract.crop_fraction if self.classifier else 1.0
        return self.classify(image, quality=assess_quality(image, crop))

    def count_outcome(self, prediction: Prediction) -> None:
        if prediction.quality.get("retake"):
            self.metrics.inc("retake_total")
        elif prediction.not_lesion:
            self.metrics.inc("not_lesion_total")
        elif prediction.uncertain:
            self.metrics.inc("uncertain_total")
        if prediction.flagged:
            self.metrics.inc("flagged_total")

    # --- the live view ---------------------------------------------------------------------------
    def source_started(self, origin: str) -> None:
        with self._lock:
            self._source, self._source_state, self._source_error = origin, "live", ""

    def source_ended(self, error: str = "") -> None:
        """The source ran out (``error`` empty) or failed with ``error``; health turns 503."""
        with self._lock:
            self._source_state = "failed" if error else "ended"
            self._source_error = error
        if error:
            self.metrics.error("source")

    def publish(self, image: np.ndarray, prediction: Prediction, jpeg: bytes, origin: str) -> LiveFrame:
        """Make a classified frame the newest one (what ``/frame.jpg`` and ``/results`` serve)."""
        now = self._clock()
        with self._lock:
            self._seq += 1
            self._live = LiveFrame(self._seq, image, prediction, jpeg, origin, now)
            self._frame_times.append(now)
            live = self._live
        self.metrics.inc("frames_total")
        return live

    def latest(self) -> LiveFrame | None:
        """The newest frame, however old."""
        with self._lock:
            return self._live

    def live(self) -> LiveFrame | None:
        """The newest frame while the source is live and fresh; None once it stalled, ended or failed."""
        with self._lock:
            live, state = self._live, self._source_state
        if live is None or state != "live" or self._clock() - live.monotonic > self.stale_after_s:
            return None
        return live

    def fps(self) -> float:
        with self._lock:
            times = list(self._frame_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` document; ``healthy`` is False when the source ended, failed or went stale."""
        now = self._clock()
        with self._lock:
            live, state, error, origin = self._live, self._source_state, self._source_error, self._source
        age = None if live is None else now - live.monotonic
        alive = state == "live" and age is not None and age <= self.stale_after_s
        if self._stop.is_set():
            status = "stopping"
        elif state in ("ended", "failed"):
            status = state
        elif live is None:
            status = "starting"
        else:
            status = "ok" if alive else "stale"
        return {
            "healthy": self.model_loaded and alive and not self._stop.is_set(),
            "status": status,
            "model_loaded": self.model_loaded,
            "source": origin,
            "source_alive": alive,
            "camera_alive": alive,
            "source_error": error or None,
            "last_frame_age_s": None if age is None else round(age, 3),
            "stale_after_s": self.stale_after_s,
            "frames_total": self.metrics.count("frames_total"),
            "fps": round(self.fps(), 2),
            "uptime_s": round(now - self._started, 1),
        }

    # --- stopping ---------------------------------------------------------------------------------
    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_stop(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s, waking early (True) when the kiosk is stopping."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Ask the frame loop to end (thread-safe; not from a signal handler)."""
        self._stop.set()
