"""Signed model files: a clinic can require that a model was signed by a key it trusts.

The contract's digest catches damage, not a deliberate edit (whoever edits the bytes can recompute it).
A signature can't be recomputed without the private key: ``convert --sign-key KEY`` (and ``recalibrate
--sign-key KEY``) write ``NAME.tflite.sig``, an Ed25519 signature of the whole file; ``edge-detect
--trusted-key PUB`` refuses a file whose signature is missing or not made by that key. Keys are PEM files::

    openssl genpkey -algorithm ed25519 -out model-signing.pem          # keep it off the kiosk
    openssl pkey -in model-signing.pem -pubout -out model-signing.pub.pem
"""

from __future__ import annotations

from pathlib import Path

from edge.model.contract import ContractError
from edge.model.modelfile import write_atomic

__all__ = ["SIGNATURE_SUFFIX", "sign_file", "sign_or_clear", "signature_path", "verify_file"]

SIGNATURE_SUFFIX = ".sig"


def signature_path(model: str | Path) -> Path:
    model = Path(model)
    return model.with_name(model.name + SIGNATURE_SUFFIX)


def _load_key(path: str | Path, private: bool):  # noqa: ANN202 - a cryptography key object
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    kind = "private" if private else "public"
    try:
        data = Path(path).read_bytes()
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))  # fmt: skip
    except OSError as exc:
        raise ContractError(f"cannot read the {kind} key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ContractError(f"{path} is not a PEM {kind} key: {exc}") from None
    wanted = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, wanted):
        raise ContractError(f"{path} is not an Ed25519 {kind} key")
    return key


def sign_file(model: str | Path, private_key: str | Path) -> Path:
    """Write ``MODEL.sig``: the Ed25519 signature of the file's bytes. Returns its path."""
    key = _load_key(private_key, private=True)
    return write_atomic(signature_path(model), key.sign(Path(model).read_bytes()))


def sign_or_clear(model: str | Path, private_key: str | Path | None) -> Path | None:
    """After (re)writing ``model``: sign it with ``private_key``, or, without one, remove a signature of an
    earlier file (it would not match). Returns the signature's path, or None."""
    if private_key is None:
        signature_path(model).unlink(missing_ok=True)
        return None
    return sign_file(model, private_key)


def verify_file(model: str | Path, public_key: str | Path) -> None:
    """Check ``MODEL.sig`` against the file's bytes and ``public_key``.

    Raises:
        ContractError: the key is unusable, the signature is missing, or it does not match.
    """
    from cryptography.exceptions import InvalidSignature

    key = _load_key(public_key, private=False)
    sig = signature_path(model)
    if not sig.is_file():
        raise ContractError(f"{model} is not signed ({sig.name} is missing) and a trusted key is required")
    try:
        key.verify(sig.read_bytes(), Path(model).read_bytes())
    except InvalidSignature:
        raise ContractError(f"{model} is not signed by the trusted key {public_key}: it was changed or signed by "
                            "another key") from None  # fmt: skip
