"""`convert` stopped by SIGTERM or Ctrl-C while TensorFlow converts: one sentence, exit 130, no file written."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.model.contract import ModelContract, save_contract
from tests.conftest import TINY_LABELS, make_folder_dataset

pytestmark = pytest.mark.training


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_conversion_stops_with_one_sentence_and_writes_nothing(tmp_path, signum):
    pytest.importorskip("keras")
    from training.model import build_classifier

    data = make_folder_dataset(tmp_path / "data", per_class=12)
    run = tmp_path / "run"
    run.mkdir()
    model, _ = build_classifier(len(TINY_LABELS), 32, "small", None)
    model.save(run / "model.keras")
    labels = tuple(sorted(TINY_LABELS))
    save_contract(ModelContract(task="classify", labels=labels, arch="mobilenet_v3_small", image_size=32),
                  run / "contract.json")  # fmt: skip
    out = tmp_path / "out" / "model.tflite"
    out.parent.mkdir()
    cmd = [str(Path(sys.executable).parent / "convert"), str(run), "--int8", "--data", str(data), "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    err = ""
    for line in proc.stderr:  # the converter runs right after this line
        err += line
        if "converting" in line:
            proc.send_signal(signum)
            break
    err += proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, err[-3000:]
    assert f"{signal.Signals(signum).name}: stopped; no file is half-written" in err and "Traceback" not in err
    assert not list(out.parent.iterdir())  # neither the file nor a temporary one
