"""End to end: train a tiny segmenter, convert it to int8, run edge-detect --segment with it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.model.modelfile import read_contract
from tests.conftest import WEIGHTS
from tests.conftest import run_command as _run
from tests.segmentation.seg_synth import lesion_pair, write_isic_layout, write_ph2_layout

pytestmark = [pytest.mark.slow, pytest.mark.training]
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("seg_e2e")
    data = write_ph2_layout(tmp / "data", n=14, height=72, width=96)
    isic = write_isic_layout(tmp / "isic", n=8, seed=50, beside=True, height=72, width=96)
    classifier = tmp / "classifier"  # a classifier run whose test part the segmenter must not train on
    classifier.mkdir()
    test_part = [str(isic / "ISIC_0000000.jpg"), str(data / "images" / "IMD001.jpg")]
    (classifier / "split.json").write_text(json.dumps({"train": [], "validation": [], "test": test_part}))
    run = tmp / "run"
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "none"
    _run("train", str(data), str(isic), "--task", "segment", "--hold-out", str(classifier), "--out", str(run),
         "--img-size", "64", "--epochs", "1", "--head-epochs", "1", "--batch-size", "8", "--lr", "1e-3",
         "--weights", weights)  # fmt: skip
    out = tmp / "seg_int8.tflite"
    proc = _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "16", "--force")
    assert "mask IoU with Keras" in proc.stderr
    return data, run, out


def test_train_writes_a_segmentation_run(converted):
    _, run, _ = converted
    for name in ("model.keras", "contract.json", "metrics.json", "model_card.md", "split.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    contract = json.loads((run / "contract.json").read_text())
    assert contract["task"] == "segment" and contract["labels"] == ["background", "lesion"]
    assert contract["image_size"] == 64 and contract["crop_fraction"] == 1.0 and contract["interpolation"] == "area"
    metrics = json.loads((run / "metrics.json").read_text())
    val = metrics["validation"]
    assert metrics["n_train"] + metrics["n_val"] == 20 and val["n"] == metrics["n_val"]  # 22 less the 2 held out
    split = json.loads((run / "split.json").read_text())
    seen = {Path(p).name for p in split["train"] + split["validation"]}
    assert "ISIC_0000001.jpg" in seen and "IMD002.jpg" in seen
    assert not seen & {"ISIC_0000000.jpg", "IMD001.jpg"}
    assert 0 <= val["thresholded_jaccard"] <= val["mean_jaccard"] <= 1 and 0 <= val["mean_dice"] <= 1
    assert len(list((run / "overlays").glob("*.png"))) == min(6, metrics["n_val"])
    assert "Not a medical device" in (run / "model_card.md").read_text()


def test_convert_embeds_the_contract_and_reports_mask_fidelity(converted):
    _, _, out = converted
    contract = read_contract(out)
    assert contract.task == "segment" and "int8_mask_iou" in contract.metrics
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    assert set(report["mask_iou"]) == {"mean", "min"} and 0 <= report["mask_iou"]["min"] <= report["mask_iou"]["mean"]
    assert set(report["keras"]) >= {"mean_jaccard", "thresholded_jaccard", "mean_dice"}
    assert set(report["latency_ms"]) == {"int8", "float32"}
    assert json.loads(out.with_suffix(".contract.json").read_text())["task"] == "segment"


def test_edge_detect_segment_reports_outline_and_area(converted, tiny_tflite, tmp_path):
    _, _, seg = converted
    image, _ = lesion_pair(99, height=240, width=320)
    path = tmp_path / "lesion.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    proc = _run("edge-detect", "--model", str(tiny_tflite), "--segment", str(seg), "--source", str(path), "--json",
                "--save", str(tmp_path / "saved"))  # fmt: skip
    [record] = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    lesion = record["lesion"]
    assert 0.0 <= lesion["area_fraction"] <= 1.0 and lesion["segment_ms"] > 0
    if lesion["found"]:  # one epoch on 16 images: usually finds the dark oval, but not guaranteed
        assert len(lesion["outline"]) >= 3 and all(len(p) == 2 for p in lesion["outline"])
        assert 0.0 <= lesion["irregularity"] <= 1.0 and lesion["perimeter_ratio"] >= 0.99
        x0, y0, x1, y1 = lesion["crop"]
        assert x1 - x0 == y1 - y0 and x0 >= 0 and y0 >= 0 and x1 <= 320 and y1 <= 240
    else:
        assert lesion["outline"] is None and lesion["fallback"].startswith("centre crop")
    assert record["label"] in read_contract(tiny_tflite).labels
    assert len(list((tmp_path / "saved").glob("*.jpg"))) == 1


def test_edge_detect_segment_refuses_a_classifier_as_segmenter(tiny_tflite, tmp_path):
    path = tmp_path / "x.jpg"
    cv2.imwrite(str(path), np.full((64, 64, 3), 128, np.uint8))
    proc = _run("edge-detect", "--model", str(tiny_tflite), "--segment", str(tiny_tflite), "--source", str(path),
                check=False)  # fmt: skip
    assert proc.returncode == 2 and "not a segmenter" in proc.stderr and "Traceback" not in proc.stderr


def test_a_segmenter_stopped_after_its_first_epoch_resumes_to_the_same_end(tmp_path):
    """The segmenter trains through the classifier's fit loop: a checkpoint an epoch, SIGTERM, --resume."""
    import csv

    from tests.helpers.runs import command, stopped_after_a_checkpoint

    data = write_ph2_layout(tmp_path / "data", n=12, height=72, width=96)
    run = tmp_path / "run"
    cmd = command("train", str(data), "--task", "segment", "--out", str(run), "--img-size", "64", "--epochs", "3",
                  "--head-epochs", "0", "--batch-size", "4", "--patience", "9", "--weights", "none")  # fmt: skip
    returncode, err = stopped_after_a_checkpoint(cmd, run)
    assert returncode == 130, err[-3000:]
    assert f"continue with `train --resume {run}`" in err and "Traceback" not in err
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert 1 <= state["epoch"] < 3 and state["config"]["task"] == "segment"

    resumed = _run("train", "--resume", str(run))
    assert f"resuming {run} after epoch {state['epoch']}" in resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and len(metrics["history"]["val_mean_jaccard"]) == 3
    with (run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and all(r["val_mean_jaccard"] for r in rows)
    assert json.loads((run / "contract.json").read_text())["task"] == "segment"
    assert not (run / "checkpoint").exists()
