"""Kiosk counters and a latency histogram, rendered in the Prometheus text exposition format.

Hand-written on purpose: a dozen lines of text need no client library on a Raspberry Pi.
Format reference: https://prometheus.io/docs/instrumenting/exposition_formats/ (version 0.0.4).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS_S", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Upper bounds (seconds) of the classification latency histogram: int8 MobileNetV3 on a Pi 4/5 runs
# in 10-100 ms, so the buckets are densest there.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_PREFIX = "skinedge_"

# name -> help text; every counter is always rendered, at zero before its first event.
_COUNTERS = {
    "frames_total": "Frames classified by the live frame loop.",
    "uploads_total": "Photos classified through the upload form.",
    "captures_total": "Frames frozen with the capture button.",
    "uncertain_total": "Predictions whose top-1 confidence was below the contract's threshold.",
    "retake_total": "Frames or photos that failed the image-quality gates (retake).",
    "not_lesion_total": "Frames or photos the lesion gate read as not a skin lesion.",
    "flagged_total": "Predictions whose malignancy risk reached the contract's threshold.",
}
_ERROR_KINDS = ("frame", "source", "upload")


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


class Metrics:
    """Thread-safe counters, ``errors_total{kind}`` and one latency histogram."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self._buckets = tuple(sorted(buckets))
        self._bucket_counts = [0] * len(self._buckets)
        self._latency_sum = 0.0
        self._latency_count = 0
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._errors = dict.fromkeys(_ERROR_KINDS, 0)

    def inc(self, name: str, amount: int = 1) -> None:
        """Add to a counter named in ``_COUNTERS`` (e.g. ``"frames_total"``)."""
        with self._lock:
            self._counters[name] += amount

    def error(self, kind: str) -> None:
        """Count one error of ``kind`` (``frame``, ``source`` or ``upload``)."""
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1

    def observe_latency(self, seconds: float) -> None:
        """Record one classification's wall time (preprocess + inference), in seconds."""
        with self._lock:
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(self._buckets):
                if seconds <= bound:
                    self._bucket_counts[i] += 1

    def count(self, name: str) -> int:
        with self._lock:
            return self._counters[name] if name != "errors_total" else sum(self._errors.values())

    def render(self, gauges: Mapping[str, tuple[float, str]] | None = None) -> str:
        """The exposition text; ``gauges`` adds ``name -> (value, help)`` sampled by the caller."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            full = _PREFIX + name
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} {kind}")
            return full

        with self._lock:
            for name, help_text in _COUNTERS.items():
                full = family(name, "counter", help_text)
                lines.append(f"{full} {self._counters[name]}")
            full = family("errors_total", "counter", "Errors by kind: frame, source (lost or ended), upload.")
            for kind, value in sorted(self._errors.items()):
                lines.append(f'{full}{{kind="{kind}"}} {value}')
            full = family(
                "classify_latency_seconds", "histogram", "Wall time of one classification (preprocess + model)."
            )
            for bound, value in zip(self._buckets, self._bucket_counts):
                lines.append(f'{full}_bucket{{le="{_number(bound)}"}} {value}')
            lines.append(f'{full}_bucket{{le="+Inf"}} {self._latency_count}')
            lines.append(f"{full}_sum {_number(self._latency_sum)}")
            lines.append(f"{full}_count {self._latency_count}")
        for name, (value, help_text) in (gauges or {}).items():
            full = family(name, "gauge", help_text)
            lines.append(f"{full} {_number(value)}")
        return "\n".join(lines) + "\n"
