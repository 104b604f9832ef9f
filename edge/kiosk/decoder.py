"""Decode untrusted photos in a child process with a memory ceiling and a deadline.

No header parser can promise what a decoder will allocate: a JPEG can hide a larger frame behind junk
that the decoder skips, and a progressive JPEG keeps full-size coefficient buffers even when decoded at
1/8 scale. So the kiosk trusts neither: each upload is decoded in a child forked from a small, single-
threaded server process (multiprocessing's ``forkserver``), whose address space is capped at its own
size plus ``memory_bytes`` and which is killed after ``timeout_s``. A photo over either limit is answered
with one sentence; the kiosk itself never holds more than the shrunken image it gets back.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

__all__ = ["BoundedDecoder", "DecodeRefused"]

log = logging.getLogger(__name__)

_PRELOAD = ["numpy", "cv2", "edge.image.preprocess", "edge.kiosk.decoder"]


class DecodeRefused(ValueError):
    """The photo could not be decoded within the limits; the message is for people."""


def _address_space() -> int:
    """This process's virtual size in bytes (what RLIMIT_AS counts)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _decode_in_child(data: bytes, reduce: int, memory_bytes: int, max_side: int, out: Connection) -> None:
    """The child's work: cap the address space, decode, shrink, send (kind, payload) back."""
    import cv2

    from edge.image.preprocess import ImageError, decode_image

    limit = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        image = decode_image(data, name="upload", reduce=reduce)
        del data
        side = max(image.shape[:2])
        if side > max_side:  # the kiosk needs the model's input and a thumbnail, not the full size
            scale = max_side / side
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        out.send(("image", np.ascontiguousarray(image)))
    except ImageError as exc:
        out.send(("undecodable", str(exc)))
    except (MemoryError, cv2.error):
        out.send(("memory", ""))


class BoundedDecoder:
    """Decodes one photo at a time out of process, within ``memory_bytes`` and ``timeout_s``.

    Args:
        memory_bytes: address space the child may add to its own (the decoder's buffers and the image).
        timeout_s: the child is killed past this (e.g. a JPEG of thousands of progressive scans).
        max_side: images come back shrunk to at most this many pixels on their long side.
    """

    def __init__(self, memory_bytes: int = 160 * 1024 * 1024, timeout_s: float = 5.0, max_side: int = 1600) -> None:
        self.memory_bytes, self.timeout_s, self.max_side = memory_bytes, timeout_s, max_side
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_PRELOAD)

    def start(self) -> None:
        """Start the server process now (it imports OpenCV once), so the first upload does not wait."""
        import cv2

        ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
        self.decode(png.tobytes(), 1)

    def decode(self, data: bytes, reduce: int = 1) -> np.ndarray:
        """RGB uint8 HWC of ``data`` decoded at 1/``reduce`` scale (JPEG), shrunk to ``max_side``.

        Raises:
            DecodeRefused: the photo does not decode, needs more memory than allowed, or takes too long.
        """
        receive, send = self._ctx.Pipe(duplex=False)
        child = self._ctx.Process(
            target=_decode_in_child, args=(data, reduce, self.memory_bytes, self.max_side, send), daemon=True
        )
        try:
            child.start()
            send.close()
            answer = self._answer(receive, child)
        except OSError as exc:  # the decoder process could not be started
            log.error("cannot start the upload decoder: %s", exc)
            raise DecodeRefused("The kiosk cannot read photos right now; try again in a moment.") from None
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join(1.0)
        kind, payload = answer
        if kind == "image":
            return payload
        if kind == "undecodable":
            # libjpeg and libpng give up the same way on damage and on a refused allocation
            raise DecodeRefused("That file does not decode within the kiosk's limits: it may be damaged, or too large "
                                "to read; send a smaller photo (a JPEG).")  # fmt: skip
        if kind == "timeout":
            raise DecodeRefused(f"That photo took longer than {self.timeout_s:g} s to read; send a plain JPEG.")
        raise DecodeRefused("That photo needs more memory to read than the kiosk allows; send a smaller photo.")

    def _answer(self, receive: Connection, child: Any) -> tuple[str, Any]:
        if not receive.poll(self.timeout_s):
            log.warning("an upload took over %.1f s to decode: stopped", self.timeout_s)
            return "timeout", None
        try:
            return receive.recv()
        except EOFError:  # the child died: killed over its memory, or the decoder crashed
            log.warning("the upload decoder stopped (exit %s)", child.exitcode)
            return "memory", None
