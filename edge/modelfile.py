"""Embed the model contract in a ``.tflite`` file and read it back, without TensorFlow.

The contract is stored as UTF-8 JSON in a flatbuffer ``Model.metadata`` entry named
``skinedge_contract`` (the same slot TFLite uses for its own metadata), so one file is all a kiosk
needs. Reading walks the flatbuffer directly with the small ``flatbuffers`` package.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import flatbuffers
from flatbuffers import number_types as N

from edge.contract import ContractError, ModelContract

__all__ = ["METADATA_NAME", "embed_contract", "read_contract", "read_metadata", "write_atomic"]

METADATA_NAME = "skinedge_contract"
_TFLITE_IDENTIFIER = b"TFL3"


def _table(buf: bytes, pos: int) -> flatbuffers.table.Table:
    return flatbuffers.table.Table(buf, pos)


def _vector(tab: flatbuffers.table.Table, slot: int) -> tuple[int, int]:
    """(start, length) of the vector in vtable ``slot``; (0, 0) when absent."""
    off = tab.Offset(slot)
    if not off:
        return 0, 0
    return tab.Vector(off), tab.VectorLen(off)


def read_metadata(path: str | Path) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a ``.tflite`` file, name -> raw bytes."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ContractError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
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


def read_contract(path: str | Path) -> ModelContract:
    """The contract embedded in a ``.tflite`` file.

    Raises:
        ContractError: the file is not a TFLite model or carries no (valid) contract.
    """
    meta = read_metadata(path)
    if METADATA_NAME not in meta:
        raise ContractError(f"{path} carries no skinedge contract; convert it with `convert` or pass a contract file")
    return ModelContract.from_json(meta[METADATA_NAME])


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
    """Return ``model_bytes`` with ``contract`` stored in its metadata (replacing an older one)."""
    from ai_edge_litert import schema_py_generated as schema  # ships with the LiteRT wheel

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    payload = schema.BufferT()
    payload.data = list(contract.to_json().encode())
    model.buffers = list(model.buffers or [])
    ours = (METADATA_NAME, METADATA_NAME.encode())
    model.metadata = [m for m in (model.metadata or []) if (m.name or b"") not in ours]
    model.buffers.append(payload)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    return bytes(builder.Output())
