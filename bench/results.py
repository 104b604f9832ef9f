"""Where benchmarks leave their figures: ``bench/results/NAME.json``, read by ``bench/report.py``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}"


def save(name: str, command: str, **figures: Any) -> Path:
    """Write the figures with the command that made them, the machine and today's date."""
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(exist_ok=True)
    record = {"command": command, "machine": machine(), "date": date.today().isoformat(), **figures}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def screen_runs(name: str, doc: str, per_run: Callable[[Path], dict[str, Any]], **figures: Any) -> None:
    """The command line every per-run screen shares: ``python bench/SCRIPT.py RUN [RUN ...]``.

    Prints one row per run and saves them, with ``figures``, as ``bench/results/NAME.json``.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = [per_run(run) for run in args.runs]
    print(json.dumps(rows, indent=1))
    command = f"python bench/{Path(sys.argv[0]).name} " + " ".join(str(r) for r in args.runs)
    save(name, command, **figures, runs=rows)


def paired_screen(name: str, doc: str, per_run: Callable[[Path, str], tuple[dict[str, Any], Any]],
                  figure: Callable | None = None, **figures: Any) -> None:  # fmt: skip
    """The command line every paired screen shares: ``python bench/SCRIPT.py RUN [RUN ...] [--int8 FILE]``.

    ``per_run(run, int8_name)`` gives a row and the run's paired sets (one seed); the rule (bench/paired.py,
    on ``figure``, by default the mean malignancy AUC) judges them. Prints the verdict and saves the rows, the
    gains, their interval and the verdict, with ``figures``, as ``bench/results/NAME.json`` (or ``--name``).
    """
    from paired import judge, mean_auc

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--int8", default="int8.tflite", help="each run's int8 file")
    parser.add_argument("--name", default=name, help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows, seeds = zip(*(per_run(run, args.int8) for run in args.runs))
    verdict = judge(seeds, figure or mean_auc)
    print(verdict.line())
    command = f"python bench/{Path(sys.argv[0]).name} {' '.join(str(r) for r in args.runs)} --int8 {args.int8}"
    command += f" --name {args.name}" if args.name != name else ""
    save(args.name, command, **figures, runs=list(rows), gains=list(verdict.gains), interval=list(verdict.interval),
         verdict=verdict.line())  # fmt: skip
