"""Run a source in its own thread behind a one-frame buffer, so capture overlaps inference."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from edge.frames import Frame, Source

__all__ = ["ThreadedCapture"]

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    frame: Frame | None = None
    done: bool = False
    error: BaseException | None = None
    dropped: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)


class ThreadedCapture(Source):
    """Run a source in its own thread behind a one-frame buffer, so capture overlaps inference.

    A live source overwrites the buffer (the consumer always gets the newest frame; older ones are
    counted in :attr:`dropped`); any other source waits until the consumer took the previous frame,
    so a video file still delivers every frame in order. Errors raised by the source are re-raised
    in the consumer.

    Args:
        source: the source to run (opened by this wrapper).
        stop: an outside event (e.g. set by a signal handler) that also ends iteration.
    """

    def __init__(self, source: Source, stop: threading.Event | None = None) -> None:
        super().__init__()
        self.source = source
        self.live = source.live
        self.sequential = source.sequential
        self.skipped = source.skipped
        self._outer_stop = stop
        self._slot = _Slot()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._outer_stop is not None and self._outer_stop.is_set())

    def open(self) -> None:
        self.source.open()

    def _run(self) -> None:
        slot = self._slot
        try:
            for frame in self.source:
                with slot.cond:
                    if not self.live:
                        while slot.frame is not None and not self._stopping():
                            slot.cond.wait(0.05)
                    if self._stopping():
                        break
                    if slot.frame is not None:
                        slot.dropped += 1
                    slot.frame = frame
                    slot.cond.notify_all()
        except BaseException as exc:  # handed over to the consumer thread, which re-raises it
            slot.error = exc
        finally:
            with slot.cond:
                slot.done = True
                slot.cond.notify_all()

    def frames(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"capture-{self.source!r}", daemon=True)
            self._thread.start()
        slot = self._slot
        while True:
            with slot.cond:
                while slot.frame is None and not slot.done and not self._stopping():
                    slot.cond.wait(0.05)
                if self._stopping():
                    return
                if slot.frame is None:  # done, nothing left
                    if slot.error is not None:
                        raise slot.error
                    return
                frame, slot.frame = slot.frame, None
                slot.cond.notify_all()
            yield frame

    def close(self) -> None:
        self._stop.set()
        self.source.request_stop()
        with self._slot.cond:
            self._slot.cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("capture thread did not stop within 2 s; releasing the source anyway")
        self.source.close()

    def __repr__(self) -> str:
        return f"ThreadedCapture({self.source!r})"
