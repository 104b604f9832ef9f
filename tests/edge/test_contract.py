import pytest

from edge.model.contract import ContractError, ModelContract, load_contract, save_contract
from edge.model.modelfile import read_contract


def test_contract_roundtrip_json(tmp_path, tiny_contract):
    path = save_contract(tiny_contract, tmp_path / "contract.json")
    assert load_contract(path) == tiny_contract
    assert load_contract(tmp_path) == tiny_contract


def test_contract_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ContractError, match="unknown contract fields"):
        ModelContract.from_dict({"task": "classify", "labels": ["a", "b"], "colour": "RGB"})
    with pytest.raises(ContractError, match="not among labels"):
        ModelContract(task="classify", labels=("a", "b"), malignant_labels=("c",))
    with pytest.raises(ContractError, match="at least 2 labels"):
        ModelContract(task="classify", labels=("a",))
    with pytest.raises(ContractError, match="not valid JSON"):
        ModelContract.from_json("{nope")


def test_embedded_contract_reads_back_without_tensorflow(tiny_tflite, tiny_contract):
    assert read_contract(tiny_tflite).replace(model_sha256="") == tiny_contract  # the digest is the file's
    assert load_contract(tiny_tflite) == read_contract(tiny_tflite)


def test_read_contract_rejects_non_tflite(tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"this is not a model at all")
    with pytest.raises(ContractError, match="not a TFLite model"):
        read_contract(bogus)


def test_a_damaged_model_file_is_refused(tiny_tflite, tmp_path):
    import pytest

    from edge.model.classifier import Classifier
    from edge.model.contract import ContractError
    from edge.model.modelfile import file_digest, read_contract

    data = tiny_tflite.read_bytes()
    contract = read_contract(tiny_tflite)
    assert len(contract.model_sha256) == 64 and file_digest(data) == contract.model_sha256
    damaged = bytearray(data)
    for at in range(2000, 2000 + 50 * 7, 7):  # 50 bytes in the weights, as a failing SD card would
        damaged[at] ^= 0xFF
    path = tmp_path / "damaged.tflite"
    path.write_bytes(bytes(damaged))
    with pytest.raises(ContractError, match="damaged: its bytes no longer match"):
        Classifier(path)
    Classifier(tiny_tflite)  # the original still loads


def test_re_embedding_replaces_the_digest(tiny_tflite):
    from edge.model.modelfile import embed_contract, file_digest, read_contract

    contract = read_contract(tiny_tflite)
    again = embed_contract(tiny_tflite.read_bytes(), contract.replace(risk_threshold=0.3))
    assert again.count(b'"model_sha256"') == 1 and file_digest(again) != contract.model_sha256
    assert file_digest(again) in again.decode("latin-1")


def test_diagnosis_codes_read_as_names():
    from edge.model.contract import readable_label

    assert readable_label("MEL") == "melanoma" and readable_label("bkl") == "pigmented benign keratosis"
    assert readable_label("nevus") == "nevus" and readable_label("Something else") == "Something else"
