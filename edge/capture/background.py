"""Run a source (or any chain of generator stages) in its own thread behind a one-item buffer.

Capture waits, decoding and preprocessing then overlap inference. Live inputs keep only the newest
item (stale camera frames are dropped); files hand over every item in order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from edge.capture.frames import Frame, Source

__all__ = ["Handoff", "ThreadedCapture", "background"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_EMPTY = object()


class Handoff:
    """A one-item buffer between a producer thread and a consumer.

    Args:
        latest: overwrite an item the consumer has not taken yet (counted in :attr:`dropped`)
            instead of waiting for it to be taken.
        should_stop: polled every 50 ms by both sides; True ends the hand-over.
    """

    def __init__(self, latest: bool = False, should_stop: Callable[[], bool] = lambda: False) -> None:
        self.latest = latest
        self.should_stop = should_stop
        self.dropped = 0
        self._cond = threading.Condition()
        self._item: Any = _EMPTY
        self._done = False
        self._error: BaseException | None = None

    def _stopping(self) -> bool:
        return self.should_stop()

    def produce(self, items: Iterable[Any]) -> None:
        """Feed ``items`` into the buffer until exhausted or stopped (run this in the producer thread)."""
        try:
            for item in items:
                with self._cond:
                    if not self.latest:
                        while self._item is not _EMPTY and not self._stopping():
                            self._cond.wait(0.05)
                    if self._stopping():
                        return
                    if self._item is not _EMPTY:
                        self.dropped += 1
                    self._item = item
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def consume(self) -> Iterator[Any]:
        """Items in hand-over order; re-raises the producer's error after the last one."""
        while True:
            with self._cond:
                while self._item is _EMPTY and not self._done and not self._stopping():
                    self._cond.wait(0.05)
                if self._stopping():
                    return
                if self._item is _EMPTY:
                    if self._error is not None:
                        raise self._error
                    return
                item, self._item = self._item, _EMPTY
                self._cond.notify_all()
            yield item

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def background(
    items: Iterable[T], *, latest: bool = False, stop: threading.Event | None = None, name: str = "background"
) -> Iterator[T]:
    """Iterate ``items`` in a worker thread, one item ahead of the consumer.

    Args:
        items: an iterable (e.g. a chain of generator stages); only the worker touches it.
        latest: keep only the newest item when the consumer is slower (live cameras); otherwise
            every item is handed over in order.
        stop: when set, both sides end within about 50 ms.
        name: the worker thread's name.

    Closing the returned generator ends the worker after its current item.
    """
    halt = threading.Event()
    handoff = Handoff(latest, lambda: halt.is_set() or (stop is not None and stop.is_set()))
    worker = threading.Thread(target=handoff.produce, args=(items,), name=name, daemon=True)
    worker.start()
    try:
        yield from handoff.consume()
    finally:
        halt.set()
        handoff.wake()
        worker.join(timeout=1.0)


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
        self._handoff = Handoff(self.live, self._stopping)
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._handoff.dropped

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._outer_stop is not None and self._outer_stop.is_set())

    def open(self) -> None:
        self.source.open()

    def frames(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._handoff.produce, args=(self.source,), name=f"capture-{self.source!r}", daemon=True
            )
            self._thread.start()
        return self._handoff.consume()

    def close(self) -> None:
        self._stop.set()
        self.source.request_stop()
        self._handoff.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                log.warning("capture thread did not stop within 2 s; releasing the source anyway")
        self.source.close()

    def __repr__(self) -> str:
        return f"ThreadedCapture({self.source!r})"
