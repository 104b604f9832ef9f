"""The one handler of SIGINT and SIGTERM, for every long job: the frame loop and the kiosk, training, a
conversion.

The first signal asks the job to stop at its next safe point (a frame loop finishes its frame, training
the step in flight: an exception raised at an arbitrary point could land inside a camera driver or
TensorFlow's tracing), by setting ``event``. A job with no safe point (a conversion) asks ``at_once``: the
first signal raises ``KeyboardInterrupt`` there and then. A second signal always stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["SIGNALS", "StopSignals"]

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Routes SIGINT and SIGTERM to a stop request while installed (``with StopSignals() as stop:``).

    Installs only from the main thread (the only one signals reach); elsewhere it is a plain request.

    Args:
        event: set on the first signal; a new one when None.
        at_once: the first signal raises ``KeyboardInterrupt`` too.
        doing: what the job finishes before it stops, for the log line.
    """

    def __init__(
        self,
        event: threading.Event | None = None,
        *,
        at_once: bool = False,
        doing: str = "finishing the current step",
        signals: Sequence[int] = SIGNALS,
    ) -> None:
        self.event = event or threading.Event()
        self.at_once, self.doing, self.signals = at_once, doing, tuple(signals)
        self.signum: int | None = None  # the first signal that came
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def name(self) -> str:
        """The first signal's name (SIGTERM, SIGINT), or "" when none came."""
        return signal.Signals(self.signum).name if self.signum else ""

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` once a stop was asked for (at a job's safe point)."""
        if self.requested:
            raise KeyboardInterrupt

    def __call__(self, signum: int, _frame: object = None) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            log.warning("%s again: stopping now", name)
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()
        if self.at_once:
            raise KeyboardInterrupt
        log.info("%s: %s and stopping", name, self.doing)

    def install(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread() and not self._previous:
            self._previous = {s: signal.signal(s, self) for s in self.signals}
        return self

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
