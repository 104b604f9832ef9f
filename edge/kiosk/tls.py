"""HTTPS for the kiosk: TLS done on memory buffers (``ssl.MemoryBIO``, the standard library's way for
event loops), so the server loop reads requests exactly as over plain TCP and every check on a request's
head sees the same bytes.

Make a certificate for the kiosk's name or address (a clinic's own CA is better; browsers warn about a
self-signed one until it is trusted)::

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \\
        -keyout kiosk.key -out kiosk.crt -subj "/CN=kiosk.local" \\
        -addext "subjectAltName=DNS:kiosk.local,IP:192.168.1.20"
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["TLSSession", "server_context"]

_RECORD = 16 * 1024  # one TLS record's worth of plaintext


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server context for this certificate chain and key: TLS 1.2 or later, the library's default ciphers.

    Raises:
        ValueError: a file is missing, unreadable, or the key does not match the certificate (one sentence).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    for what, path in (("certificate", cert), ("key", key)):
        if not Path(path).is_file():
            raise ValueError(f"no TLS {what} at {path}")
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ValueError(f"cannot use the TLS certificate {cert} with the key {key}: {reason}") from exc
    return context


class TLSSession:
    """One connection's TLS state: ciphertext in, plaintext out; plaintext in, ciphertext out.

    Not thread-safe: the server loop drives it (its worker threads only fill the output buffers).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.ready = False  # the handshake is done
        self.closed = False  # the client ended TLS (close_notify)

    def receive(self, ciphertext: bytes) -> bytes:
        """The plaintext these bytes complete (``b""`` while the handshake or a record is incomplete).

        Raises:
            ssl.SSLError: a failed handshake or a damaged record (the connection is to be closed).
        """
        self._incoming.write(ciphertext)
        if not self.ready:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self.ready = True
        chunks = []
        while True:
            try:
                chunk = self._tls.read(_RECORD)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.closed = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> int:
        """Encrypt up to one record of ``plaintext``; returns how many bytes of it were taken."""
        taken = bytes(plaintext[:_RECORD])
        self._tls.write(taken)
        return len(taken)

    def ciphertext(self) -> bytes:
        """What is to go on the wire now (handshake messages and records), emptied as it is read."""
        return self._outgoing.read()
