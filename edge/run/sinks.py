"""Where results go: JSON lines, one human line per result, annotated frames on disk, a window,
and the end-of-run summary and latency statistics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edge.capture.sources import VIDEO_SUFFIXES, Skipped
from edge.image.overlay import draw_overlay
from edge.model.contract import ModelContract, readable_label
from edge.run.pipeline import Result

__all__ = [
    "DisplaySink",
    "HumanSink",
    "JsonLinesSink",
    "LatencyStats",
    "SaveError",
    "SaveSink",
    "Summary",
    "describe",
    "gui_available",
]

log = logging.getLogger(__name__)


def _annotated_bgr(result: Result, contract: ModelContract) -> np.ndarray:
    """The frame with the overlay drawn, in OpenCV's BGR order (for imwrite and imshow)."""
    return draw_overlay(
        cv2.cvtColor(result.frame.image, cv2.COLOR_RGB2BGR),
        result.prediction,
        crop_fraction=contract.crop_fraction,
        fps=result.fps or None,
        risk_threshold=contract.risk_threshold,
        color_order="BGR",
        lesion=result.lesion,
    )


class SaveError(OSError):
    """Annotated frames cannot be written (folder missing, read-only, disk full)."""


def describe(result: Result) -> str:
    """One human line: where, verdict, label, confidence, risk, and the not-a-diagnosis caveat."""
    p = result.prediction
    origin = result.frame.origin
    where = origin
    if origin.startswith("camera:") or Path(origin).suffix.lower() in VIDEO_SUFFIXES:
        where = f"{origin}#{result.frame.index}"
    parts = [f"{readable_label(p.label)} {p.confidence:.0%}"]
    if p.risk is not None:
        parts.append(f"malignancy risk {p.risk:.0%}" + (" (flagged: see a clinician)" if p.flagged else ""))
    lesion = result.lesion
    if lesion is not None:
        found = f"lesion {lesion.area_fraction:.0%} of view, border irregularity {lesion.irregularity:.2f}"
        parts.append(found if lesion.found else "no lesion outlined (centre crop)")
    verdict = "" if p.verdict == p.label else f"{p.verdict}; "
    return f"{where}: {verdict}{', '.join(parts)} (not a diagnosis)"


class JsonLinesSink:
    """One JSON object per result on ``stream`` (flushed, so a pipe reader sees it at once)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, result: Result) -> None:
        self.stream.write(json.dumps(result.to_record(), ensure_ascii=False) + "\n")
        self.stream.flush()


class HumanSink:
    """A readable line per result; for live sources only when the verdict or label changes."""

    def __init__(self, stream: TextIO, live: bool = False) -> None:
        self.stream = stream
        self.live = live
        self._last: tuple[str, str] | None = None

    def __call__(self, result: Result) -> None:
        key = (result.prediction.verdict, result.prediction.label)
        if self.live and key == self._last:
            return
        self._last = key
        self.stream.write(describe(result) + "\n")
        self.stream.flush()


class SaveSink:
    """Write each result's annotated frame as JPEG into ``directory`` (created if missing).

    Raises:
        SaveError: the folder cannot be created or a frame cannot be written (e.g. disk full).
    """

    def __init__(self, directory: str | Path, contract: ModelContract, quality: int = 90) -> None:
        self.directory = Path(directory)
        self.contract = contract
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.saved = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SaveError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc

    def _name(self, result: Result) -> str:
        origin = result.frame.origin
        if origin.startswith("camera:"):
            return f"camera{origin.split(':', 1)[1]}_{result.frame.index:06d}.jpg"
        stem = Path(origin).stem
        return f"{result.frame.index:05d}_{stem}.jpg"

    def __call__(self, result: Result) -> None:
        bgr = _annotated_bgr(result, self.contract)
        ok, data = cv2.imencode(".jpg", bgr, self.params)
        path = self.directory / self._name(result)
        try:
            if not ok:
                raise OSError(f"JPEG encoding failed for {path.name}")
            path.write_bytes(data.tobytes())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise SaveError(f"cannot save annotated frames to {self.directory}: {exc.strerror or exc}") from exc
        self.saved += 1


def gui_available() -> bool:
    """Whether this OpenCV build can open windows (opencv-python-headless cannot)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "")
    return False


class DisplaySink:
    """Show annotated frames in an OpenCV window; q or Esc sets ``stop``."""

    window = "edge-detect"

    def __init__(self, contract: ModelContract, stop: threading.Event) -> None:
        self.contract = contract
        self.stop = stop

    def __call__(self, result: Result) -> None:
        bgr = _annotated_bgr(result, self.contract)
        cv2.imshow(self.window, bgr)
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            log.info("window closed by key press")
            self.stop.set()

    def close(self) -> None:
        cv2.destroyAllWindows()


class Summary:
    """Counts over a run: results, labels, verdicts, flagged; printed at the end of a folder run."""

    def __init__(self) -> None:
        self.results = 0
        self.labels: Counter[str] = Counter()
        self.retakes = 0
        self.uncertain = 0
        self.not_lesion = 0
        self.flagged = 0

    def __call__(self, result: Result) -> None:
        p = result.prediction
        self.results += 1
        self.labels[p.label] += 1
        self.retakes += bool(p.quality.get("retake"))
        self.not_lesion += p.not_lesion and not p.quality.get("retake")
        self.uncertain += p.uncertain and not p.quality.get("retake") and not p.not_lesion
        self.flagged += p.flagged

    def lines(self, skipped: Sequence[Skipped] = ()) -> list[str]:
        out = [f"{self.results} classified, {len(skipped)} skipped (not a diagnosis)"]
        out += [f"  {label}: {n}" for label, n in self.labels.most_common()]
        out.append(f"  flagged for a clinician: {self.flagged}; uncertain: {self.uncertain}; retake: {self.retakes}"
                   + (f"; not a skin lesion: {self.not_lesion}" if self.not_lesion else ""))  # fmt: skip
        out += [f"  skipped {s.origin}: {s.reason}" for s in skipped[:20]]
        if len(skipped) > 20:
            out.append(f"  ... and {len(skipped) - 20} more skipped")
        return out


class LatencyStats:
    """Per-frame timings for ``--benchmark``.

    ``invoke_ms``: the interpreter call; ``frame_ms``: latency from taking the frame from the source
    to the finished prediction; ``period_ms``: time between consecutive results (1 / throughput),
    the per-frame cost of the whole pipeline once its stages overlap; ``overhead``: median period
    beyond the median invoke, as a fraction of invoke.
    """

    def __init__(self) -> None:
        self.invoke: list[float] = []
        self.path: list[float] = []
        self.times: list[float] = []

    def __call__(self, result: Result) -> None:
        self.invoke.append(result.prediction.invoke_ms)
        self.path.append(result.latency_ms)
        self.times.append(time.perf_counter())

    @property
    def periods(self) -> list[float]:
        return [(b - a) * 1000.0 for a, b in zip(self.times, self.times[1:])]

    @property
    def fps(self) -> float:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float]) -> dict[str, float]:
            if not values:
                return {"p50": 0.0, "p90": 0.0, "p99": 0.0}
            p50, p90, p99 = np.percentile(values, (50, 90, 99))
            return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3)}

        invoke, period = pct(self.invoke), pct(self.periods)
        overhead = (period["p50"] - invoke["p50"]) / invoke["p50"] if invoke["p50"] and self.periods else None
        return {
            "frames": len(self.path),
            "invoke_ms": invoke,
            "frame_ms": pct(self.path),
            "period_ms": period,
            "overhead": None if overhead is None else round(overhead, 3),
            "fps": round(self.fps, 2),
        }

    def table(self) -> str:
        s = self.summary()
        rows = [
            "| per frame | p50 ms | p90 ms | p99 ms |",
            "|---|---|---|---|",
            *(
                f"| {name} | {s[key]['p50']:.2f} | {s[key]['p90']:.2f} | {s[key]['p99']:.2f} |"
                for name, key in (
                    ("invoke", "invoke_ms"),
                    ("frame path (taken from source -> result)", "frame_ms"),
                    ("period between results", "period_ms"),
                )
            ),
        ]
        overhead = "n/a" if s["overhead"] is None else f"{s['overhead']:.0%} of invoke"
        return "\n".join(rows) + f"\n\n{s['frames']} frames, {s['fps']:.1f} FPS, overhead beyond invoke: {overhead}"
