"""Where benchmarks leave their figures: ``bench/results/NAME.json``, read by ``bench/report.py``."""

from __future__ import annotations

import json
import os
import platform
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
