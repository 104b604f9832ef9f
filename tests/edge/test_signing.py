"""Model files a clinic can trust: no digest is refused; with --trusted-key, only files signed by that key load."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge import app
from edge.model.contract import ContractError
from edge.model.modelfile import embed_contract, read_contract
from edge.model.signing import sign_file, signature_path, verify_file
from tests.conftest import write_image


def _keys(folder, name="clinic"):
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return private, public


@pytest.fixture
def signed(tiny_tflite, tmp_path):
    model = tmp_path / "model.tflite"
    model.write_bytes(tiny_tflite.read_bytes())
    private, public = _keys(tmp_path)
    sign_file(model, private)
    return model, private, public


def test_a_signed_file_verifies_and_an_edited_one_does_not_even_with_its_digest_recomputed(signed, tmp_path):
    model, _, public = signed
    verify_file(model, public)
    edited = embed_contract(model.read_bytes(), read_contract(model).replace(risk_threshold=0.99))
    model.write_bytes(edited)
    assert read_contract(model).risk_threshold == 0.99  # the digest alone cannot tell a deliberate edit
    with pytest.raises(ContractError, match="not signed by the trusted key"):
        verify_file(model, public)


def test_a_missing_signature_or_another_key_is_refused(signed, tmp_path):
    model, _, public = signed
    _, stranger = _keys(tmp_path, "stranger")
    with pytest.raises(ContractError, match="not signed by the trusted key"):
        verify_file(model, stranger)
    signature_path(model).unlink()
    with pytest.raises(ContractError, match="is not signed"):
        verify_file(model, public)
    with pytest.raises(ContractError, match="not a PEM public key"):
        verify_file(model, model)


def test_a_file_without_a_digest_is_refused(tiny_tflite, tmp_path):
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tiny_tflite.read_bytes()), 0)
    entry = next(m for m in model.metadata if m.name in (b"skinedge_contract", "skinedge_contract"))
    model.buffers[entry.buffer].data = list(read_contract(tiny_tflite).replace(model_sha256="").to_json().encode())
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path = tmp_path / "blank.tflite"
    path.write_bytes(bytes(builder.Output()))
    with pytest.raises(ContractError, match="carries no digest"):
        read_contract(path)


def test_edge_detect_with_a_trusted_key_loads_signed_files_only(signed, tmp_path):
    model, _, public = signed
    photo = write_image(tmp_path / "photo.png", np.full((64, 64, 3), (200, 150, 120), np.uint8))
    args = ["--model", str(model), "--source", str(photo), "--trusted-key", str(public)]
    assert CliRunner().invoke(app.cli, args).exit_code == 0
    signature_path(model).write_bytes(b"\0" * 64)
    result = CliRunner().invoke(app.cli, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "unusable model:" in result.output and "not signed by the trusted key" in result.output
