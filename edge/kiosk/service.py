"""systemd integration without dependencies: ``sd_notify`` messages and the watchdog.

Under ``Type=notify`` systemd hands the service ``$NOTIFY_SOCKET`` (an ``AF_UNIX`` datagram socket; a
leading ``@`` names the abstract namespace). :class:`Supervisor` speaks for the kiosk: ``READY=1`` once
the model is loaded and the page listens (with or without a camera), ``STATUS=`` lines that say what the
page says (live, waiting, camera failed, source ended, page not answering), ``WATCHDOG=1`` at half of
``$WATCHDOG_USEC`` while the page answers its own request and the frames are not stalled, and
``STOPPING=1``. When either check fails the pings stop, and systemd restarts the service. A camera that
failed or a video that ended is *not* a stall: the page stays up and says so. Outside systemd (no
``$NOTIFY_SOCKET``) every call is a cheap no-op. SIGTERM and SIGINT are routed by
``edge.run.stopping.StopSignals``; ``edge.kiosk.web.serve`` then stops the server and the camera.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Notifier", "Supervisor", "Watchdog", "return_freed_memory", "status_text", "watchdog_interval"]

_M_MMAP_THRESHOLD = -3  # glibc mallopt() parameters
_M_ARENA_MAX = -8

log = logging.getLogger(__name__)


def _socket_address(address: str) -> str | bytes:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value; ``@name`` is the abstract namespace."""
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address


class Notifier:
    """Sends ``sd_notify`` messages to ``$NOTIFY_SOCKET``; does nothing when it is unset.

    Thread-safe; a failed send is logged once at debug level and never raised: systemd notifications
    are best effort and must not take the kiosk down.

    Args:
        address: the socket path (``@`` for the abstract namespace); ``$NOTIFY_SOCKET`` when None.
    """

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._address = _socket_address(address) if address else None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="live")``; True when delivered."""
        if self._address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self._address)
                return True
            except OSError as exc:
                if not self._warned:
                    log.debug("cannot notify systemd at %r: %s", self._address, exc)
                    self._warned = True
                return False

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def return_freed_memory(mmap_threshold: int = 1 << 20, arenas: int = 2) -> bool:
    """Make glibc hand large freed buffers (decoded photos) back to the system at once.

    By default glibc raises its mmap threshold after the first large free and keeps such buffers in
    one heap arena per thread, so a kiosk that decoded a few big photos on several server threads
    stays hundreds of MB larger. A fixed threshold and two arenas keep the peak where the decode
    budget says. Returns False where the C library is not glibc (nothing changes there).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_ARENA_MAX, arenas))


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``; None when not asked for.

    ``$WATCHDOG_PID``, when set, must be this process (systemd sets it for the main process only).
    """
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6


class Watchdog:
    """Rate-limits ``WATCHDOG=1``: the frame loop calls :meth:`tick` per frame, at most one ping per
    ``interval`` seconds leaves. A loop that stalls stops ticking, so the pings stop with it.

    Args:
        notifier: where pings go.
        interval: seconds between pings; from :func:`watchdog_interval` when None (and then no pings
            at all if systemd did not ask for a watchdog).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        notifier: Notifier,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.notifier = notifier
        self.interval = watchdog_interval() if interval is None else interval
        self._clock = clock
        self._last: float | None = None

    def tick(self) -> bool:
        """Ping systemd if ``interval`` has passed since the last ping; True when a ping was sent."""
        if not self.interval or not self.notifier.enabled:
            return False
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return self.notifier.watchdog()


def status_text(health: dict[str, Any], answering: bool = True, last: str = "") -> str:
    """The ``STATUS=`` line for a ``/healthz`` document: what the kiosk page shows, in one line."""
    if not answering:
        return "web page not answering"
    status = health["status"]
    if status == "ok":
        return f"live {health['fps']:.1f} fps from {health['source']}" + (f", last: {last}" if last else "")
    if status == "stale":
        return f"camera stalled: no frame for {health['last_frame_age_s']:.0f} s"
    if status == "failed":
        return f"camera failed: {health['source_error']}; the page says so"
    if status == "ended":
        return f"source {health['source']} ended; the page shows no live result"
    if status == "starting":
        return "page up, waiting for the camera"
    return status


class Supervisor:
    """The kiosk's voice to systemd, checked from the main thread a few times a second.

    Args:
        health: returns the ``/healthz`` document (``edge.kiosk.live.LiveState.health``).
        notifier: where ``READY=1``, ``STATUS=`` and ``WATCHDOG=1`` go.
        probe: True when the web server answers a request of its own (any HTTP status).
        interval: seconds between watchdog pings; from ``$WATCHDOG_USEC`` when None.
        last: the newest verdict for the status line (e.g. "nevus 81%"), or "".
        status_every_s: a repeated status line is re-sent after this long (fps changes).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        health: Callable[[], dict[str, Any]],
        notifier: Notifier,
        probe: Callable[[], bool],
        *,
        interval: float | None = None,
        last: Callable[[], str] = lambda: "",
        status_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health, self.notifier, self.probe, self.last = health, notifier, probe, last
        self.watchdog = Watchdog(notifier, interval, clock)
        self.check_every = min(self.watchdog.interval or status_every_s, status_every_s)
        self.status_every_s = status_every_s
        self._clock = clock
        self._checked = float("-inf")
        self._sent = ("", float("-inf"))

    def ready(self) -> None:
        """``READY=1`` with the current status: the page is up whether or not a camera is."""
        text = status_text(self.health())
        self.notifier.ready(status=text)
        self._sent = (text, self._clock())

    def tick(self) -> bool:
        """Check and report when due; True when the kiosk is well (answering, frames not stalled)."""
        now = self._clock()
        if now - self._checked < self.check_every:
            return True
        self._checked = now
        health, answering = self.health(), self.probe()
        text = status_text(health, answering, self.last() if health["status"] == "ok" else "")
        if text != self._sent[0] or now - self._sent[1] >= self.status_every_s:
            self.notifier.status(text)
            self._sent = (text, now)
        well = answering and health["status"] != "stale"
        if well:
            self.watchdog.tick()
        return well
