import pytest

from edge.contract import ContractError, ModelContract, load_contract, save_contract
from edge.modelfile import read_contract


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
    assert read_contract(tiny_tflite) == tiny_contract
    assert load_contract(tiny_tflite) == tiny_contract


def test_read_contract_rejects_non_tflite(tmp_path):
    bogus = tmp_path / "model.tflite"
    bogus.write_bytes(b"this is not a model at all")
    with pytest.raises(ContractError, match="not a TFLite model"):
        read_contract(bogus)
