"""HTTPS: the kiosk given a certificate and key serves TLS with the same rules as plain HTTP (token on the
head, slow clients closed), its cookies are Secure, and a bad certificate is one sentence."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from edge.kiosk.tls import server_context
from edge.kiosk.web import KioskConfig, serve
from tests.helpers.kiosk import free_port, jpeg_bytes, lesion_image

TOKEN = "a-token-for-the-https-tests"


def _certificate(folder: Path, name: str = "kiosk") -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kiosk.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_kiosk(classifier, video, certificate):
    """An in-process HTTPS kiosk that wants a token, with short deadlines; yields (port, client context)."""
    from edge.capture.sources import open_source

    cert, key = certificate
    port, stop = free_port(), threading.Event()
    config = KioskConfig(tls_cert=cert, tls_key=key, header_timeout_s=1.5, idle_timeout_s=5.0)
    runner = threading.Thread(target=serve, args=(classifier, open_source(str(video), loop=True), "127.0.0.1", port),
                              kwargs={"config": config, "stop": stop, "token": TOKEN}, daemon=True)  # fmt: skip
    runner.start()
    client = ssl.create_default_context(cafile=str(cert))  # the certificate is checked, name included
    deadline = time.monotonic() + 30
    while True:
        try:
            if _get(port, client, "/healthz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the HTTPS kiosk did not come up"
        time.sleep(0.2)
    yield port, client
    stop.set()
    runner.join(5.0)


def _get(port: int, context: ssl.SSLContext, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def test_the_kiosk_serves_https_with_secure_cookies_and_the_same_rules(https_kiosk):
    port, client = https_kiosk
    status, headers, _ = _get(port, client, f"/?token={TOKEN}")
    cookie = dict((k.lower(), v) for k, v in headers)["set-cookie"]
    assert status == 303 and "Secure" in cookie and "HttpOnly" in cookie
    assert _get(port, client, "/results")[0] == 401  # the token is still asked for, over TLS

    photo = jpeg_bytes(lesion_image(0, (1600, 1200)))  # a few hundred KB: many TLS records each way
    boundary = "tls-test"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'.encode()
            + photo + f"\r\n--{boundary}--\r\n".encode())  # fmt: skip
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=client)
    try:
        for _ in range(2):  # one kept-alive connection, two uploads
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Authorization": f"Bearer {TOKEN}"}
            conn.request("POST", "/classify", body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200 and answer["label"] and "not a diagnosis" in answer["disclaimer"]
        conn.request("GET", "/frame.jpg", headers={"Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        assert response.status == 200 and response.read()[:2] == b"\xff\xd8"
    finally:
        conn.close()


def test_an_unauthenticated_upload_over_https_is_refused_on_its_head(https_kiosk):
    port, client = https_kiosk
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with client.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n\r\n" + b"x" * 1000)  # fmt: skip
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401") and b"access token" in answer, answer[:200]


def test_plain_http_and_a_stalled_handshake_get_nothing(https_kiosk):
    port, client = https_kiosk
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert conn.recv(4096) == b""  # not an HTTP answer: closed
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40  # the start of a ClientHello
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        closed = None
        for byte in hello:  # a byte every 0.2 s: never a whole handshake
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - started
                break
            conn.settimeout(0.2)
            try:
                if conn.recv(1) == b"":
                    closed = time.monotonic() - started
                    break
            except TimeoutError:
                pass
    assert closed is not None and closed < 4.0, closed  # 1.5 s allowed
    assert _get(port, client, "/healthz")[0] == 200


def test_a_certificate_and_key_that_do_not_fit_are_one_sentence(tmp_path, certificate):
    cert, _ = certificate
    _, other_key = _certificate(tmp_path, "other")
    with pytest.raises(ValueError, match="cannot use the TLS certificate .* with the key") as error:
        server_context(cert, other_key)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="no TLS key at"):
        server_context(cert, tmp_path / "missing.key")
    with pytest.raises(ValueError, match="both a certificate and its key"):
        KioskConfig(tls_cert=cert)


def test_cli_tls_options_need_serve_and_usable_files(tiny_tflite, video, tmp_path):
    from click.testing import CliRunner

    from edge.app import cli

    alone = CliRunner().invoke(cli, ["--model", str(tiny_tflite), "--source", str(video), "--tls-cert", "x.pem"])
    assert alone.exit_code == 2 and "need --serve" in alone.output
    missing = CliRunner().invoke(cli, ["--model", str(tiny_tflite), "--source", str(video), "--serve",
                                       f"127.0.0.1:{free_port()}", "--tls-cert", str(tmp_path / "no.crt"),
                                       "--tls-key", str(tmp_path / "no.key")])  # fmt: skip
    assert missing.exit_code == 2 and "no TLS certificate at" in missing.stderr
    assert "Traceback" not in missing.output
