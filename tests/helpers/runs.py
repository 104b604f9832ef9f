"""Helpers for the tests that stop a command mid-run (SIGTERM) and resume it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path


def command(name: str, *args: str) -> list[str]:
    """A console script of this environment (train, convert, edge-detect) with its arguments."""
    return [str(Path(sys.executable).parent / name), *args]


def stopped_after_a_checkpoint(cmd: list[str], run: Path, timeout: float = 300) -> tuple[int, str]:
    """Start ``cmd``, send SIGTERM once ``run`` holds its first epoch's checkpoint; (exit status, stderr)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not (run / "checkpoint" / "state.json").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err
