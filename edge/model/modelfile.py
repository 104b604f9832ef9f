"""Embed the model contract in a ``.tflite`` file and read it back, without TensorFlow.

The contract is stored as UTF-8 JSON in a flatbuffer ``Model.metadata`` entry named
``skinedge_contract`` (the same slot TFLite uses for its own metadata), so one file is all a kiosk
needs. Reading walks the flatbuffer directly with the small ``flatbuffers`` package.

The contract also carries ``model_sha256``, the SHA-256 of the whole file with that field's value
zeroed, so a file damaged on an SD card or in a copy is refused instead of answering differently.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from pathlib import Path

import flatbuffers
from flatbuffers import number_types as N

from edge.model.contract import ContractError, ModelContract

__all__ = ["METADATA_NAME", "embed_contract", "file_digest", "read_contract", "read_metadata", "write_atomic"]

METADATA_NAME = "skinedge_contract"
_TFLITE_IDENTIFIER = b"TFL3"
_DIGEST_FIELD = re.compile(rb'"model_sha256": "([0-9a-f]{64})"')
_NO_DIGEST = b"0" * 64


def _table(buf: bytes, pos: int) -> flatbuffers.table.Table:
    return flatbuffers.table.Table(buf, pos)


def _vector(tab: flatbuffers.table.Table, slot: int) -> tuple[int, int]:
    """(start, length) of the vector in vtable ``slot``; (0, 0) when absent."""
    off = tab.Offset(slot)
    if not off:
        return 0, 0
    return tab.Vector(off), tab.VectorLen(off)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ContractError(f"cannot read model file {path}: {exc.strerror or exc}") from exc


def read_metadata(path: str | Path, buf: bytes | None = None) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a ``.tflite`` file (or of its bytes ``buf``), name -> raw bytes."""
    path = Path(path)
    buf = _read(path) if buf is None else buf
    if len(buf) < 16 or buf[4:8] != _TFLITE_IDENTIFIER:
        raise ContractError(f"{path} is not a TFLite model file")
    try:
        root = _table(buf, flatbuffers.encode.Get(N.UOffsetTFlags.packer_type, buf, 0))
        buffers_start, n_buffers = _vector(root, 12)  # Model.buffers
        meta_start, n_meta = _vector(root, 16)  # Model.metadata
        out: dict[str, bytes] = {}
        for i in range(n_meta):
            meta = _table(buf, root.Indirect(meta_start + 4 * i))
            name_off = meta.Offset(4)
            name = meta.String(name_off + meta.Pos).decode() if name_off else ""
            buf_off = meta.Offset(6)
            index = meta.Get(N.Uint32Flags, buf_off + meta.Pos) if buf_off else 0
            if index >= n_buffers:
                continue
            buffer = _table(buf, root.Indirect(buffers_start + 4 * index))
            data_start, data_len = _vector(buffer, 4)
            out[name] = bytes(buf[data_start : data_start + data_len])
        return out
    except (IndexError, ValueError, UnicodeDecodeError, struct.error) as exc:  # truncated or garbled
        raise ContractError(f"{path} is a damaged TFLite model file") from exc


def file_digest(buf: bytes) -> str:
    """SHA-256 of a model file's bytes with the contract's ``model_sha256`` value zeroed."""
    found = list(_DIGEST_FIELD.finditer(buf))
    if len(found) != 1:
        raise ContractError("a model file must carry exactly one model_sha256 field")
    start, end = found[0].span(1)
    return hashlib.sha256(buf[:start] + _NO_DIGEST + buf[end:]).hexdigest()


def read_contract(path: str | Path) -> ModelContract:
    """The contract embedded in a ``.tflite`` file, checked against the file's digest.

    Raises:
        ContractError: the file is not a TFLite model, carries no (valid) contract or no digest, or its
            bytes do not match the digest written at conversion.
    """
    buf = _read(Path(path))
    meta = read_metadata(path, buf)
    if METADATA_NAME not in meta:
        raise ContractError(f"{path} carries no skinedge contract; convert it with `convert` or pass a contract file")
    contract = ModelContract.from_json(meta[METADATA_NAME])
    if not contract.model_sha256:
        raise ContractError(f"{path} carries no digest, so damage or an edit cannot be detected; convert it again")
    if file_digest(buf) != contract.model_sha256:
        raise ContractError(
            f"{path} is damaged: its bytes no longer match the digest written when it was converted; "
            "copy the model file again"
        )
    return contract


def write_atomic(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file.

    ``mode`` sets the permissions (default: 0666 less the umask, like ``open``).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def embed_contract(model_bytes: bytes, contract: ModelContract) -> bytes:
    """Return ``model_bytes`` with ``contract`` stored in its metadata (replacing an older one) and the
    result's digest in the contract's ``model_sha256``."""
    from ai_edge_litert import schema_py_generated as schema  # ships with the LiteRT wheel

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    payload = schema.BufferT()
    payload.data = list(contract.replace(model_sha256=_NO_DIGEST.decode()).to_json().encode())
    model.buffers = list(model.buffers or [])
    ours = (METADATA_NAME, METADATA_NAME.encode())
    for old in [m for m in (model.metadata or []) if (m.name or b"") in ours]:
        model.buffers[old.buffer].data = None  # the older contract's bytes go with its entry
    model.metadata = [m for m in (model.metadata or []) if (m.name or b"") not in ours]
    model.buffers.append(payload)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    out = bytearray(builder.Output())
    digest = file_digest(bytes(out))  # also checks that the field occurs once
    start, end = _DIGEST_FIELD.search(out).span(1)
    out[start:end] = digest.encode()
    return bytes(out)
