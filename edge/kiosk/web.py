"""The clinic kiosk: one web page over the live frame loop, served by waitress.

    edge-detect --camera --serve 127.0.0.1:8080

``create_app(state, config)`` builds the Flask app over a :class:`edge.kiosk.live.LiveState`; ``serve`` wires
a classifier and a source into it, runs the frame loop and waitress, talks to systemd and stops
cleanly on SIGTERM/SIGINT. Endpoints: ``/`` (the page), ``/frame.jpg`` (the newest annotated frame, which
the page fetches up to ``stream_fps`` times a second: no request holds a server thread for longer),
``/results`` (the live result, recent captures and uploads; memory only), ``POST /capture``,
``POST /classify`` (photo upload), ``POST /results/clear``, ``/healthz`` and ``/metrics`` (Prometheus text).

Security: loopback by default; any other address needs a token (``Authorization: Bearer``, or
``?token=`` once, which sets a cookie) from every client, this machine's own too (a proxy or port
forwarder on the device would pass LAN clients on as local), except ``/healthz`` from loopback. Wrong
tokens are rate-limited per address, and refusals are logged as one summary a minute per address. The rule
is applied by the server as soon as a request's head is in (a refused body is never buffered), and slow
heads and bodies are closed.
Nothing is written to disk unless ``record_dir`` is set: request bodies stay in memory and are refused
beyond the upload limit before they are read; uploads decode in a bounded child process. One client
holds at most ``max_client_connections`` connections, and idle ones are closed.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hmac
import io
import ipaddress
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
from flask import Flask, Response, g, jsonify, redirect, render_template, request
from flask.wrappers import Request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from edge.kiosk.decoder import BoundedDecoder
from edge.kiosk.frameloop import FrameLoop
from edge.kiosk.live import LiveState, encode_jpeg, top3
from edge.kiosk.service import Notifier, Supervisor, return_freed_memory
from edge.kiosk.uploads import MAX_PIXELS, DecodeGate, KioskBusy, Recorder, UploadError, read_upload
from edge.model.classifier import DISCLAIMER, Classifier
from edge.model.contract import ModelContract

if TYPE_CHECKING:
    import ssl

__all__ = ["TOKEN_COOKIE", "KioskConfig", "create_app", "is_loopback", "serve"]

log = logging.getLogger(__name__)

TOKEN_COOKIE = "skinedge_token"
SESSION_COOKIE = "skinedge_session"  # which browser asked for a result: only it sees it
MIN_TOKEN_LENGTH = 16
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", _CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ("Cache-Control", "no-store"),
)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv4 client of a dual-stack socket
    return (mapped or address).is_loopback


@dataclass(frozen=True)
class KioskConfig:
    """Settings of the kiosk page and its frame loop.

    Raises:
        ValueError: a non-loopback ``host`` without a token, a short token, or a value out of range.
    """

    # --- where and who
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required for any non-loopback host
    record_dir: Path | None = None  # captures and uploads are saved here; None: memory only
    tls_cert: Path | None = None  # with tls_key: serve HTTPS (edge.kiosk.tls says how to make them)
    tls_key: Path | None = None
    # --- uploads
    max_upload_bytes: int = 10 * 1024 * 1024
    max_upload_pixels: int = MAX_PIXELS
    decode_memory_bytes: int = 160 * 1024 * 1024  # an upload's decoder (a child process) may take this much more
    decode_timeout_s: float = 5.0  # ... for this long
    # --- live view
    max_fps: float = 10.0  # frames classified per second, at most
    stream_fps: float = 10.0  # frames per second the page fetches, at most
    stale_after_s: float = 5.0  # /healthz turns 503 when the newest frame is older
    recent_size: int = 20  # captures and uploads kept in memory
    recent_ttl_s: float = 120.0  # ... each forgotten this long after it was made
    upload_queue: int = 4  # uploads waiting for the one decoder; more get 503
    smooth: bool = True  # average probabilities over consecutive frames
    quality_gate: bool = True  # ask for a retake on poor frames
    # --- server
    threads: int = 8  # waitress worker threads (uploads waiting for the decoder hold one each)
    max_client_connections: int = 16  # per client address; more are closed at once
    max_connections: int = 200  # from all other clients together; the device's own (127.0.0.1, ::1) have
    device_connections: int = 50  # ... these on top, so its screen and health check always get in
    idle_timeout_s: float = 10.0  # a connection that sends nothing (no request running) for this long is closed
    header_timeout_s: float = 10.0  # a request's head must arrive within this, ...
    min_upload_bytes_per_s: float = 20_000.0  # ... and its body at least this fast after it
    title: str = "Skin lesion check"

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"the access token must be at least {MIN_TOKEN_LENGTH} characters, got {len(self.token)}; "
                "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe())'"
            )
        if not is_loopback(self.host) and not self.token:
            raise ValueError(
                f"serving on {self.host} (beyond this machine) needs an access token: "
                "pass --token or set EDGE_DETECT_TOKEN, or bind 127.0.0.1"
            )
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be within 0..65535, got {self.port}")
        if self.threads < self.upload_queue + 3:
            raise ValueError(f"threads ({self.threads}) must exceed upload_queue + 1 ({self.upload_queue + 1}) by 2")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("HTTPS needs both a certificate and its key (--tls-cert and --tls-key)")
        if self.max_upload_bytes < 1024 or self.stream_fps <= 0 or self.stale_after_s <= 0:
            raise ValueError("max_upload_bytes, stream_fps and stale_after_s must be positive")


class _MemoryRequest(Request):
    """Keeps uploaded files in memory: werkzeug would spool those over 500 KB to a temporary file."""

    def _get_file_stream(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return io.BytesIO()


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message, status=status), status


def _host_name(authority: str) -> str:
    """The name in a Host header, without its port (``[::1]:8080`` -> ``::1``)."""
    return authority[1:].split("]")[0] if authority.startswith("[") else authority.rsplit(":", 1)[0]


def _placeholder_jpeg(text: str = "Waiting for the camera...") -> bytes:
    import cv2

    image = np.full((360, 640, 3), 40, np.uint8)
    cv2.putText(image, text, (40, 190), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (230, 230, 230), 2, cv2.LINE_AA)
    return encode_jpeg(image)


def _operating_point(contract: ModelContract | None) -> str:
    """Where the "see a clinician" threshold was set: the training collection, or this clinic (`recalibrate`)."""
    if contract is None or not contract.malignant_labels:
        return ""
    site = contract.metrics.get("site_images")
    if site:
        when = str(contract.metrics.get("site_recalibrated", ""))[:10]
        malignant = contract.metrics.get("site_malignant_images")
        of_which = f" ({malignant} malignant)" if malignant is not None else ""
        return f"The clinician flag threshold was set on {site} images{of_which} from this clinic ({when})."
    return (
        "The clinician flag threshold was set on images of the training collection: on another camera "
        "expect fewer malignant lesions flagged until it is set on images from this clinic (recalibrate)."
    )


class RefusalLog:
    """Counts refusals per client address and logs the first, then one summary a minute per address, so a
    flood of refused requests or connections is one journal line, not thousands on an SD card. Thread-safe.

    It also rate-limits token guessing: an address with ``max_failures`` wrong tokens within ``window_s``
    is refused without a comparison until the window has passed.
    """

    def __init__(self, window_s: float = 60.0, max_failures: int = 10, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.max_failures, self._clock = window_s, max_failures, clock
        self._lock = threading.Lock()
        self._pending: collections.Counter[tuple[str, str]] = collections.Counter()
        self._last_logged: dict[tuple[str, str], float] = {}
        self._failures: dict[str, collections.deque[float]] = {}

    def note(self, client: str, why: str) -> None:
        key, now = (client, why), self._clock()
        with self._lock:
            self._pending[key] += 1
            if now - self._last_logged.get(key, -self.window_s) < self.window_s:
                return
            count, self._pending[key], self._last_logged[key] = self._pending[key], 0, now
            if len(self._last_logged) > 4096:  # many addresses: forget the quiet ones
                self._last_logged = {k: t for k, t in self._last_logged.items() if now - t < self.window_s}
        log.warning("refused %d request%s from %s in the last %g s: %s", count, "s"[: count != 1], client,
                    self.window_s, why)  # fmt: skip

    def failed_token(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, collections.deque(maxlen=self.max_failures)).append(self._clock())
            if len(self._failures) > 4096:
                self._failures.pop(next(iter(self._failures)))

    def locked_out(self, client: str) -> bool:
        with self._lock:
            recent = self._failures.get(client)
            return bool(recent and len(recent) == self.max_failures and self._clock() - recent[0] < self.window_s)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str  # for people
    why: str  # for the log summary


@dataclass(frozen=True)
class Asked:
    """What the access rule reads of a request: its head only, so it can be judged before any body is read."""

    method: str
    path: str
    host: str  # the Host header's name, without the port
    authority: str  # the Host header as sent (compared with Origin)
    client: str  # the peer address
    origin: str = ""
    authorization: str = ""
    cookie_token: str = ""
    query_token: str = ""


def access_refusal(asked: Asked, config: KioskConfig, refusals: RefusalLog) -> Refusal | None:
    """The access rule, on a request's head: POSTs from this page only; then, without a token configured,
    a loopback host name (no DNS rebinding); with one, the token from every client, this machine's too (a
    proxy or port forwarder on the device would otherwise pass any LAN client on as local), except for
    ``/healthz`` from loopback (systemd's and the kiosk's own health checks). Wrong tokens are rate-limited
    per address. Judged twice: by the server when the head has arrived (so a refused request's body is
    never read) and by the app."""
    if asked.method == "POST" and asked.origin and urlsplit(asked.origin).netloc != asked.authority:
        return Refusal(403, "Requests from other sites are refused.", "cross-site request")
    if not config.token:
        if asked.host not in _LOOPBACK_NAMES | {config.host}:
            return Refusal(403, "Unknown host name; open the kiosk at http://127.0.0.1 instead.", "unknown host")
        return None
    if asked.path == "/healthz" and is_loopback(asked.client):
        return None
    if refusals.locked_out(asked.client):
        return Refusal(429, "Too many wrong access tokens from this address; wait a minute.", "locked out")
    scheme, _, credentials = asked.authorization.partition(" ")
    bearer = credentials.strip() if scheme.lower() == "bearer" else ""
    supplied = asked.query_token or bearer or asked.cookie_token
    if supplied and hmac.compare_digest(supplied.encode(), config.token.encode()):
        return None
    if supplied:
        refusals.failed_token(asked.client)
    return Refusal(401, "This kiosk needs its access token: open it with ?token=... once.",
                   "wrong access token" if supplied else "no access token")  # fmt: skip


def _access_guard(config: KioskConfig, refusals: RefusalLog) -> Callable[[], Any]:
    """:func:`access_refusal` before every request the app sees; a token in the address bar becomes a cookie."""

    def guard() -> Any:
        asked = Asked(
            request.method, request.path, _host_name(request.host), request.host, request.remote_addr or "",
            request.headers.get("Origin", ""), request.headers.get("Authorization", ""),
            request.cookies.get(TOKEN_COOKIE, ""), request.args.get("token", ""),
        )  # fmt: skip
        refusal = access_refusal(asked, config, refusals)
        if refusal is not None:
            refusals.note(asked.client or "?", refusal.why)
            response, status = _error(refusal.status, refusal.message)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="skinedge"'
            return response, status
        valid_query = bool(config.token) and hmac.compare_digest(asked.query_token.encode(), config.token.encode())
        if valid_query and request.method == "GET":  # a token in the address bar: into a cookie
            args = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
            path = "/" + request.path.lstrip("/")  # never "//host": that would leave the kiosk
            response = redirect(path + (f"?{args}" if args else ""), code=303)
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="Strict", secure=request.is_secure)
            return response
        return None

    return guard


def create_app(state: LiveState, config: KioskConfig | None = None) -> Flask:
    """The kiosk's Flask app over ``state`` (which the frame loop fills).

    Args:
        state: live frames, results, counters; its classifier serves uploads.
        config: settings; the defaults (loopback, no token, nothing recorded) when None.
    """
    config = config or KioskConfig()
    gate = DecodeGate(config.upload_queue)
    decoder = BoundedDecoder(config.decode_memory_bytes, config.decode_timeout_s)
    app_extensions = {"skinedge_decoder": decoder}
    app = Flask(__name__)
    app.extensions.update(app_extensions)
    app.request_class = _MemoryRequest
    # a photo form has one file part (and a field or two); text fields keep the 500 KB default
    app.config.update(MAX_CONTENT_LENGTH=config.max_upload_bytes, MAX_FORM_PARTS=8)
    recorder = Recorder(config.record_dir) if config.record_dir else None
    placeholder = _placeholder_jpeg()
    stopped = _placeholder_jpeg("No live image: the camera stopped.")
    contract = state.classifier.contract if state.classifier else None
    max_mb = config.max_upload_bytes / (1024 * 1024)

    refusals = RefusalLog()
    app.extensions["skinedge_refusals"] = refusals
    app.before_request(_access_guard(config, refusals))

    @app.before_request
    def session() -> None:
        g.session = request.cookies.get(SESSION_COOKIE, "")
        if not (16 <= len(g.session) <= 64 and g.session.isascii()):
            g.session, g.new_session = secrets.token_urlsafe(16), True

    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS:
            if name != "Cache-Control" or request.endpoint != "static":
                response.headers[name] = value
        if g.get("new_session"):
            response.set_cookie(SESSION_COOKIE, g.session, httponly=True, samesite="Strict", secure=request.is_secure)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: RequestEntityTooLarge) -> Any:
        state.metrics.error("upload")
        if (request.content_length or 0) <= config.max_upload_bytes:  # within the size: the form's parts
            return _error(413, "That upload has too many parts or too long a text field; send one photo.")
        return _error(413, f"That photo is larger than {max_mb:g} MB; send a smaller one.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.get("/")
    def index() -> str:
        return render_template(
            "index.html",
            title=config.title,
            disclaimer=DISCLAIMER,
            max_upload_bytes=config.max_upload_bytes,
            max_upload_mb=f"{max_mb:g}",
            risk_threshold=contract.risk_threshold if contract else 0.5,
            model=f"{contract.arch} {contract.version}" if contract else "no model",
            operating_point=_operating_point(contract),
            recent_minutes=f"{config.recent_ttl_s / 60:g}",
            uncertain_margin=contract.uncertain_margin if contract else 0.1,
            stream_fps=config.stream_fps,
        )

    @app.get("/frame.jpg")
    def frame() -> Response:
        live = state.live()  # None once the camera stalled, stopped or failed: never an old frame as if current
        jpeg = live.jpeg if live is not None else (stopped if state.latest() is not None else placeholder)
        response = Response(jpeg, mimetype="image/jpeg")
        response.headers["X-Frame-Seq"] = str(live.seq if live is not None else 0)
        return response

    @app.get("/results")
    def results() -> Any:
        live = state.live()
        health = state.health()
        return jsonify(
            live=None if live is None else {**live.prediction.to_dict(), "top": top3(live.prediction)},
            status=health["status"],
            source_alive=health["source_alive"],
            fps=health["fps"],
            recent=[record.to_dict() for record in state.results.all(g.session)],
        )

    @app.get("/results/<record_id>.jpg")
    def result_image(record_id: str) -> Any:
        record = state.results.get(record_id, g.session)
        if record is None:
            return _error(404, "That result is no longer kept (only the most recent are).")
        return Response(record.jpeg, mimetype="image/jpeg")

    @app.post("/results/clear")
    def clear_results() -> Any:
        return jsonify(cleared=state.results.clear(g.session))

    @app.post("/capture")
    def capture() -> Any:
        live = state.live()
        if live is None and state.latest() is None and state.health()["status"] == "starting":
            return _error(409, "No camera frame yet: wait for the live view, then capture.")
        if live is None:
            return _error(503, "There is no live camera image to capture: the camera stopped or stalled.")
        record = state.results.add("capture", live.prediction, live.jpeg, g.session)
        state.metrics.inc("captures_total")
        if recorder is not None:
            recorder.save("capture", record.id, encode_jpeg(live.image, 95), "JPEG", record.to_dict())
        return jsonify(record.to_dict()), 201

    @app.post("/classify")
    def classify() -> Any:
        try:
            # One upload at a time is parsed, decoded and classified: the others wait with their bodies unparsed
            # (or are refused as busy), so the kiosk holds one parsed copy of a photo, not one per client.
            with gate.turn():
                upload = request.files.get("image") or next(iter(request.files.values()), None)
                if upload is None:
                    raise UploadError("No photo was sent: choose a photo file first.")
                data = upload.read()
                fmt, image = read_upload(data, config.max_upload_pixels, decoder=decoder)
                prediction = state.assess_and_classify(image) if config.quality_gate else state.classify(image)
                thumbnail = encode_jpeg(image, 85, max_width=640)
                del image
        except UploadError as exc:
            state.metrics.error("upload")
            return _error(400, str(exc))
        except KioskBusy as exc:
            state.metrics.error("busy")
            response, status = _error(503, str(exc))
            response.headers["Retry-After"] = "5"
            return response, status
        record = state.results.add("upload", prediction, thumbnail, g.session)
        state.metrics.inc("uploads_total")
        if recorder is not None:
            recorder.save("upload", record.id, data, fmt, record.to_dict())
        return jsonify(record.to_dict())

    @app.get("/healthz")
    def healthz() -> Any:
        health = state.health()
        return jsonify(health), 200 if health["healthy"] else 503

    @app.get("/metrics")
    def metrics() -> Response:
        from edge.kiosk.metrics import CONTENT_TYPE

        return Response(state.metrics.render(_gauges(state)), content_type=CONTENT_TYPE)

    return app


def _gauges(state: LiveState) -> dict[str, tuple[float, str]]:
    health = state.health()
    age = health["last_frame_age_s"]
    return {
        "model_loaded": (int(health["model_loaded"]), "1 when the model is loaded."),
        "source_alive": (int(health["source_alive"]), "1 while the camera or video delivers fresh frames."),
        "last_frame_age_seconds": (float("nan") if age is None else age, "Age of the newest frame."),
        "fps": (health["fps"], "Frames classified per second, recently."),
        "uptime_seconds": (health["uptime_s"], "Seconds since the kiosk started."),
    }


DEVICE_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})  # the kiosk's own screen and checks


def _hardened_channels(
    server: Any, config: KioskConfig, refusals: RefusalLog, tls_context: ssl.SSLContext | None = None
) -> None:
    """Harden waitress's connections (its channel and parser classes are the hooks it offers):

    - the access rule (:func:`access_refusal`) is applied as soon as a request's head has arrived, so a
      refused request's body is discarded as it comes, never buffered (64 slow unauthenticated uploads
      cost nothing);
    - a head not complete within ``header_timeout_s``, or a body arriving slower than
      ``min_upload_bytes_per_s``, closes the connection (a byte every few seconds cannot hold it);
    - waitress's own error answers (413, 400, ...) carry the page's security headers, and an oversized
      ``Expect: 100-continue`` upload gets 413 instead of "100 Continue";
    - a client's connections beyond ``max_client_connections`` are closed as soon as they are accepted, and
      all clients but the device's own together hold at most ``max_connections``;
    - with ``tls_context``, each connection speaks TLS (:class:`edge.kiosk.tls.TLSSession`) under the rules
      above; a handshake not done within ``header_timeout_s`` closes it.
    """
    from waitress.channel import HTTPChannel
    from waitress.parser import HTTPRequestParser
    from waitress.task import ErrorTask
    from waitress.utilities import Error
    from werkzeug.http import parse_cookie

    class SecureErrorTask(ErrorTask):
        def execute(self) -> None:
            self.response_headers.extend(SECURITY_HEADERS)
            if self.request.error.code == 401:
                self.response_headers.append(("WWW-Authenticate", 'Bearer realm="skinedge"'))
            super().execute()

    class Refused(Error):
        def __init__(self, refusal: Refusal) -> None:
            super().__init__(refusal.message)
            self.code, self.reason = refusal.status, HTTPStatus(refusal.status).phrase

    open_count: collections.Counter[str] = collections.Counter()  # touched by the server loop thread only

    class Channel(HTTPChannel):
        error_task_class = SecureErrorTask
        client = ""
        refused = False  # a request was refused on its head: what follows is discarded until the answer is sent

        def parser_class(self, adj: Any) -> HTTPRequestParser:  # waitress calls self.parser_class(self.adj)
            return GuardedParser(adj, self)

        def received(self, data: bytes) -> bool:
            if self.refused:
                return True  # the refused body: read off the socket and dropped, never kept
            request = self.request
            if request is not None and not request.completed:
                took = time.monotonic() - request.started
                allowed = config.header_timeout_s
                if request.headers_finished:
                    allowed += request.content_length / config.min_upload_bytes_per_s
                if took > allowed:
                    refusals.note(self.client, "a request too slow to arrive")
                    self.will_close = True  # closed on the next turn of the server loop
                    return False
            return super().received(data)

        def send_continue(self) -> None:
            if self.request is not None and self.request.error is not None:  # e.g. Content-Length too large:
                self.request.expect_continue = False  # answer the error now, never "100 Continue"
                return
            super().send_continue()

        def del_channel(self, map: Any = None) -> None:
            if self.client:
                open_count[self.client] -= 1
                self.client = ""
            super().del_channel(map)

    class GuardedParser(HTTPRequestParser):
        def __init__(self, adj: Any, channel: Channel) -> None:
            super().__init__(adj)
            self.channel, self.started = channel, time.monotonic()

        def parse_header(self, header_plus: bytes) -> None:
            super().parse_header(header_plus)
            head = self.headers
            authority = head.get("HOST", "")
            host = _host_name(authority)
            query = parse_qs(self.query or "").get("token", [""])[0]
            asked = Asked(self.command, self.path, host, authority, self.channel.client, head.get("ORIGIN", ""),
                          head.get("AUTHORIZATION", ""), parse_cookie(head.get("COOKIE", "")).get(TOKEN_COOKIE, ""),
                          query)  # fmt: skip
            refusal = access_refusal(asked, config, refusals)
            if refusal is not None:
                refusals.note(self.channel.client or "?", refusal.why)
                self.error, self.completed, self.channel.refused = Refused(refusal), True, True

    if tls_context is not None:  # ssl is loaded only for a kiosk that serves HTTPS
        import ssl

        from edge.kiosk.tls import TLSSession

        class TLSChannel(Channel):
            """A channel whose bytes on the wire are TLS; the plain channel's rules apply to what they carry."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.tls, self.wire = TLSSession(tls_context), bytearray()  # wire: ciphertext not yet sent
                self.opened, self.broken, self.close_asked = time.monotonic(), False, 0.0

            def handle_read(self) -> None:
                try:
                    data = self.socket.recv(self.adj.recv_bytes)
                except BlockingIOError:
                    return
                except OSError:
                    data = b""
                if not data:
                    self.broken = True
                    self.handle_close()
                    return
                self.last_activity = time.time()
                try:
                    plain = self.tls.receive(data)
                except ssl.SSLError:
                    refusals.note(self.client, "a failed TLS handshake")
                    self.broken = True
                    self.handle_close()
                    return
                self.flush_wire()
                if plain:
                    self.received(plain)
                    return
                late = time.monotonic() - self.opened > config.header_timeout_s
                if self.tls.closed or (late and not self.tls.ready):
                    self.will_close = True

            def flush_wire(self) -> int:
                """Send what TLS has made; returns the bytes still waiting for the socket."""
                self.wire += self.tls.ciphertext()
                if self.wire and not self.broken:
                    try:
                        del self.wire[: self.socket.send(self.wire)]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.broken = True
                return 0 if self.broken else len(self.wire)

            def send(self, data: bytes, do_close: bool = True) -> int:  # waitress's outbufs come through here
                if self.flush_wire():
                    return 0  # the socket is full: take nothing more until it drains
                taken = self.tls.send(data)
                self.flush_wire()
                return taken

            def writable(self) -> bool:
                return bool(self.wire) or super().writable()

            def handle_write(self) -> None:
                if self.flush_wire():
                    return
                super().handle_write()

            def handle_close(self) -> None:
                # a response ending in a close is still on its way: close once it is out (or the client
                # has stopped reading for idle_timeout_s)
                now = time.monotonic()
                self.close_asked = self.close_asked or now
                if self.flush_wire() and now - self.close_asked < config.idle_timeout_s:
                    self.will_close = True
                    return
                super().handle_close()

    def accept(srv: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> Channel | None:
        client = addr[0] if isinstance(addr, tuple) else str(addr)
        others = sum(n for c, n in open_count.items() if c not in DEVICE_ADDRESSES)
        per_client, others_limit = config.max_client_connections, config.max_connections
        if open_count[client] >= per_client or (client not in DEVICE_ADDRESSES and others >= others_limit):
            refusals.note(client, f"a connection over its {per_client}, or over {others_limit} from all clients")
            sock.close()
            return None
        channel = (Channel if tls_context is None else TLSChannel)(srv, sock, addr, adj, map=map)
        channel.client = client
        open_count[client] += 1
        return channel

    server.channel_class = accept


def _dual_stack_socket(port: int) -> socket.socket:
    """A listening socket on every IPv6 and IPv4 address (``--serve [::]:PORT``), not IPv6 alone."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def _self_probe(host: str, port: int, tls: bool = False, timeout: float = 3.0) -> Callable[[], bool]:
    """True while the kiosk answers a ``/healthz`` request of its own (whatever its status)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    context = None
    if tls:  # its own certificate, over loopback: encryption without a name to check
        import ssl

        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def probe() -> bool:
        conn = None
        try:
            conn = socket.create_connection((target, port), timeout=timeout)
            conn = context.wrap_socket(conn) if context else conn
            conn.sendall(request)
            return conn.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False
        finally:
            if conn is not None:
                conn.close()

    return probe


def serve(
    classifier: Classifier,
    source: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    token: str | None = None,
    record_dir: str | Path | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    smooth: bool | None = None,
    quality_gate: bool | None = None,
    config: KioskConfig | None = None,
    stop: threading.Event | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Run the kiosk until SIGTERM/SIGINT (or ``stop``): frame loop, web page, systemd notifications.

    Args:
        classifier: the loaded model, shared by the frame loop and uploads (it is thread-safe).
        source: an unopened ``edge.capture.sources.Source``; the frame loop opens it and releases it on stop.
        host, port: where to listen; a non-loopback host needs ``token``.
        token: the access token (see :class:`KioskConfig`).
        record_dir: save captures and uploads here; nothing is written to disk when None.
        tls_cert, tls_key: serve HTTPS with this certificate (chain) and key (see :mod:`edge.kiosk.tls`).
        smooth, quality_gate: frame-loop switches (see :class:`KioskConfig`); None keeps ``config``'s.
        config: further settings; the arguments above override its fields.
        stop: an event that ends the run when set (for callers outside the main thread).
        notifier: systemd notifications; from ``$NOTIFY_SOCKET`` when None.

    Raises:
        ValueError: a non-loopback host without a token, or a bad setting.
        OSError: the address cannot be bound, or ``record_dir`` is not writable.
    """
    import waitress
    from waitress import wasyncore

    from edge.run.stopping import StopSignals

    return_freed_memory()  # decoded uploads go back to the system, whichever thread decoded them
    base = config or KioskConfig()
    config = dataclasses.replace(
        base,
        host=host,
        port=port,
        token=token or base.token,
        record_dir=Path(record_dir) if record_dir else base.record_dir,
        tls_cert=Path(tls_cert) if tls_cert else base.tls_cert,
        tls_key=Path(tls_key) if tls_key else base.tls_key,
        smooth=base.smooth if smooth is None else smooth,
        quality_gate=base.quality_gate if quality_gate is None else quality_gate,
    )
    state = LiveState(
        classifier,  # uploads take turns with the frame loop on its interpreter: one copy in memory
        recent_size=config.recent_size,
        recent_ttl_s=config.recent_ttl_s,
        stale_after_s=config.stale_after_s,
    )
    tls_context = None
    if config.tls_cert is not None:
        from edge.kiosk.tls import server_context

        tls_context = server_context(config.tls_cert, config.tls_key)
    app = create_app(state, config)
    app.extensions["skinedge_decoder"].start()  # the upload decoder's server process, before the first upload
    body_limit = config.max_upload_bytes + 1024 * 1024  # the multipart envelope on top of the photo
    socket_map: dict[Any, Any] = {}
    try:
        where = {"sockets": [_dual_stack_socket(config.port)]} if config.host in ("::", "[::]") else {
            "host": config.host, "port": config.port}  # fmt: skip
        server = waitress.create_server(
            app,
            map=socket_map,
            **where,
            threads=config.threads,
            ident="skinedge",
            url_scheme="https" if tls_context else "http",  # the cookies are Secure over HTTPS
            # A Content-Length over the limit is refused before the body is read; a chunked body is
            # refused once it passes the limit, which lies below the point where waitress would spill
            # the request into a temporary file: nothing of an upload touches the disk.
            max_request_body_size=body_limit,
            inbuf_overflow=body_limit + 1024 * 1024,
            outbuf_high_watermark=2 * 1024 * 1024,
            outbuf_overflow=4 * 1024 * 1024,  # above the watermark: output never spills to disk either
            channel_timeout=config.idle_timeout_s,
            cleanup_interval=max(1, int(config.idle_timeout_s // 2)),
            connection_limit=config.max_connections + config.device_connections,
        )
    except OSError as exc:
        raise OSError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
    _hardened_channels(server, config, app.extensions["skinedge_refusals"], tls_context)
    notifier = notifier or Notifier()
    loop = FrameLoop(
        state,
        classifier,
        source,
        max_fps=config.max_fps,
        smooth=config.smooth,
        quality_gate=config.quality_gate,
    )
    stop = stop or threading.Event()
    signals = StopSignals(stop, doing="closing the page and the camera").install()
    server_thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    bound = server.effective_host, server.effective_port
    scheme = "https" if tls_context else "http"
    log.info("kiosk page at %s://%s:%s/ (%s)", scheme, *bound, "token required" if config.token else "loopback only")

    def last() -> str:
        live = state.live()
        return f"{live.prediction.verdict} {live.prediction.confidence:.0%}" if live else ""

    supervisor = Supervisor(state.health, notifier, _self_probe(*bound, tls=tls_context is not None), last=last)
    loop.start()
    server_thread.start()
    supervisor.ready()  # the page is up (it says so when there is no camera)
    try:
        while not stop.wait(min(0.25, supervisor.check_every)):
            if not server_thread.is_alive():
                log.error("the web server stopped unexpectedly")
                break
            supervisor.tick()
    finally:
        notifier.stopping("stopping")
        loop.stop()
        server.task_dispatcher.shutdown(timeout=0.5)  # running requests finish while the loop still sends
        log.debug("request threads done")
        with contextlib.suppress(OSError):  # the server loop may have closed its sockets already
            server.trigger.pull_trigger(lambda: wasyncore.close_all(socket_map, ignore_all=True))
        server_thread.join(0.5)
        log.debug("server closed")
        loop.join(0.5)
        log.debug("frame loop joined")
        if loop.is_alive():
            log.warning("the frame loop did not stop within 0.5 s; exiting anyway")
        notifier.close()
        signals.restore()
        log.info("kiosk stopped")
