"""The ``edge-detect`` run loop: a source, the pipeline and the chosen sinks, wired together.

:mod:`edge.app` parses the options and maps errors to exit codes; :func:`run` does the work and
writes results to stdout (human lines, JSON lines or the benchmark table) and the folder summary.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import click

from edge.capture.sources import ImageSource, Source, SourceError
from edge.image.quality import QualityThresholds
from edge.model.classifier import Classifier
from edge.model.segment import Segmenter
from edge.run.pipeline import iter_results, run_sinks
from edge.run.sinks import DisplaySink, HumanSink, JsonLinesSink, LatencyStats, SaveSink, Summary

__all__ = ["RunOptions", "repeat_frames", "run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What one ``edge-detect`` run does with the frames (mirrors the CLI options)."""

    show: bool = False  # an OpenCV window
    json_lines: bool = False  # JSON lines on stdout instead of human lines
    save: Path | None = None  # annotated JPEGs into this folder
    benchmark: int | None = None  # time this many frames (after one warm-up) instead of printing results
    smooth: bool = True  # moving average over camera/video frames
    quality_gate: bool = True  # ask for retakes
    pipelined: bool = True  # prepare the next frame while the model runs


def repeat_frames(make_source: Callable[[], Source], n: int) -> Iterator[Any]:
    """Frames from fresh sources, one after another, until ``n`` (for --benchmark on short inputs)."""
    produced = 0
    while produced < n:
        got = 0
        with make_source() as frames:
            for frame in islice(frames, n - produced):
                got += 1
                yield frame
        produced += got
        if got == 0:
            return


def run(
    classifier: Classifier,
    make_source: Callable[[], Source],
    stop: threading.Event,
    options: RunOptions,
    segmenter: Segmenter | None = None,
) -> Summary:
    """Classify every frame of a new source from ``make_source`` until it ends or ``stop`` is set.

    With a ``segmenter`` each frame's lesion is found, outlined and measured first, and the
    classifier gets its crop.

    Raises:
        SourceError: the source failed, or not a single frame could be classified.
        SaveError: annotated frames cannot be written.
        FileNotFoundError: the source path does not exist.
    """
    o = options
    contract = classifier.contract
    thresholds = QualityThresholds() if o.quality_gate else None
    summary, stats = Summary(), LatencyStats()
    sinks: list[Any] = [summary, stats]
    display = DisplaySink(contract, stop) if o.show else None
    with make_source() as src:
        if o.benchmark is None:
            sinks.append(JsonLinesSink(sys.stdout) if o.json_lines else HumanSink(sys.stdout, live=src.live))
        if o.save is not None:
            sinks.append(SaveSink(o.save, contract))
        if display is not None:
            sinks.append(display)
        frames: Any = src
        if o.benchmark is not None and not src.live:
            frames = repeat_frames(make_source, o.benchmark + 1)  # +1: the first invoke warms up
        results = iter_results(
            classifier,
            frames,
            thresholds=thresholds,
            smooth=None if o.smooth else False,
            stop=stop,
            limit=None if o.benchmark is None else o.benchmark + 1,
            pipelined=o.pipelined,
            segmenter=segmenter,
        )
        if o.benchmark is not None:
            next(results, None)  # warm-up, not measured
        try:
            for _ in run_sinks(results, sinks):
                pass
        finally:
            if display is not None:
                display.close()
        skipped = list(src.skipped)
    if o.benchmark is not None:
        _report_benchmark(stats, o.json_lines, classifier)
    else:
        if o.json_lines:  # a skipped file is an answer too: one JSON line each
            for s in skipped:
                click.echo(json.dumps({"source": s.origin, "skipped": s.reason}, ensure_ascii=False))
        if isinstance(src, ImageSource) and (len(src.paths) > 1 or skipped):
            for line in summary.lines(skipped):  # a folder or glob: counts per label, skipped files
                click.echo(line, err=o.json_lines)
    if summary.results == 0 and not stop.is_set():
        raise SourceError("no frame could be classified" + (f" ({len(skipped)} skipped)" if skipped else ""))
    return summary


def _report_benchmark(stats: LatencyStats, json_lines: bool, classifier: Classifier) -> None:
    if json_lines:
        click.echo(json.dumps({"benchmark": stats.summary(), "runtime": classifier.runtime}))
    else:
        click.echo(f"benchmark: {classifier.model.path.name} on {classifier.runtime}\n")
        click.echo(stats.table())
