"""`convert --threshold-on`: only a collection the run trained with can set the flag's threshold."""

from __future__ import annotations

import json

from click.testing import CliRunner

from convert.cli import main
from edge.model.contract import ModelContract, save_contract
from tests.conftest import make_folder_dataset


def test_a_collection_the_run_did_not_train_with_is_a_usage_error(tmp_path):
    data = make_folder_dataset(tmp_path / "data", classes=("mel", "nv"), per_class=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    save_contract(ModelContract(task="classify", labels=("MEL", "NV"), image_size=32, malignant_labels=("MEL",)),
                  run / "contract.json")  # fmt: skip
    (run / "metrics.json").write_text(json.dumps({"config": {"data": str(data.resolve())}}))
    elsewhere = make_folder_dataset(tmp_path / "elsewhere", classes=("mel", "nv"), per_class=2)
    result = CliRunner().invoke(main, [str(run), "--threshold-on", str(elsewhere), "--out", str(tmp_path / "m.tflite")])
    assert result.exit_code == 2 and "is not one of the collections the run trained with" in result.output
    assert not (tmp_path / "m.tflite").exists()
