"""End to end: train a tiny model, convert it to int8, run edge-detect on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge.model.modelfile import read_contract
from tests.conftest import WEIGHTS, make_folder_dataset
from tests.conftest import run_command as _run

pytestmark = [pytest.mark.slow, pytest.mark.training]
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("e2e")
    data = make_folder_dataset(tmp / "data", per_class=14)
    (data / "nevus" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    weights = str(WEIGHTS) if WEIGHTS.is_file() else "none"
    run = tmp / "run"
    _run("train", str(data), "--out", str(run), "--arch", "small", "--img-size", "64", "--epochs", "1",
         "--head-epochs", "1", "--batch-size", "8", "--weights", weights, "--color-constancy", "none")  # fmt: skip
    return data, run


def test_train_writes_every_artifact(trained):
    _, run = trained
    for name in ("model.keras", "contract.json", "metrics.json", "report.txt", "confusion_matrix.png", "roc.png",
                 "training_curves.png", "model_card.md", "split.json"):  # fmt: skip
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_skipped"] == 1 and metrics["skipped"][0][0].endswith("corrupt.jpg")
    val = metrics["validation"]
    assert 0 <= val["balanced_accuracy"] <= 1 and set(val["per_class"]) == {"keratosis", "melanoma", "nevus"}
    contract = json.loads((run / "contract.json").read_text())
    assert contract["malignant_labels"] == ["melanoma"] and contract["image_size"] == 64
    assert "Not a medical device" in (run / "model_card.md").read_text()


def test_convert_int8_then_edge_detect_agrees_with_convert(trained, tmp_path):
    data, run = trained
    out = tmp_path / "tiny_int8.tflite"
    proc = _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "20",
                "--min-agreement", "0")  # fmt: skip
    assert "top-1 agreement" in proc.stderr
    contract = read_contract(out)  # no TensorFlow needed
    assert contract.labels == ("keratosis", "melanoma", "nevus") and "int8_agreement" in contract.metrics
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    assert report["size_bytes"] == pytest.approx(out.stat().st_size, rel=0.01)
    assert report["labelled"] <= report["n"] and 0 <= report["label_agreement"] <= 1
    # the file's contract carries the file's own validation figures; the Keras model's are named as such
    assert contract.metrics["accuracy"] == pytest.approx(report["tflite"]["accuracy"], abs=1e-4)
    assert contract.metrics["balanced_accuracy"] == pytest.approx(report["tflite"]["balanced_accuracy"], abs=1e-4)
    assert "keras_balanced_accuracy" in contract.metrics
    assert set(report["latency_ms"]) == {"int8", "float32"}

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(out))
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_input_details()[0]["quantization"] == (1.0, 0)
    # the second output is the pooled features the lesion gate reads, fitted on the training side
    assert [tuple(d["shape"]) for d in interp.get_output_details()] == [(1, 3), (1, contract.lesion_gate["dims"])]
    assert report["lesion_gate"]["fitted_on"] > 0
    assert all(0 <= share <= 0.02 for share in report["lesion_gate"]["validation_refused"].values())

    detect = _run("edge-detect", "--model", str(out), "--source", str(data / "melanoma"), "--json")
    lines = [json.loads(line) for line in detect.stdout.splitlines() if line.strip()]
    assert len(lines) == 14
    assert all(line["label"] in contract.labels and "diagnosis" in line["disclaimer"] for line in lines)
    assert all(line["lesion_score"] > 0 and isinstance(line["not_lesion"], bool) for line in lines)

    # the edge API gives the same answer, image by image
    from edge.image.preprocess import load_image
    from edge.model.classifier import Classifier

    clf = Classifier(out)
    for line in lines:
        assert clf.classify(load_image(line["source"])).label == line["label"]


def test_a_file_with_flip_views_is_one_model_to_the_edge(trained, tmp_path):
    data, run = trained
    out = tmp_path / "views_int8.tflite"
    _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "10",
         "--qat-epochs", "1", "--views", "4", "--min-agreement", "0")  # fmt: skip
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    contract = read_contract(out)
    assert report["views"] == 4 and contract.metrics["views"] == 4 and contract.lesion_gate["dims"] > 0

    from edge.model.classifier import Classifier

    clf = Classifier(out)  # one input, the logits and the (averaged) features: like any classifier file
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    answers = [clf.logits(np.ascontiguousarray(v)) for v in (image, image[:, ::-1], image[::-1], image[::-1, ::-1])]
    for other in answers[1:]:  # the file averages all four views: a mirrored image gets the very same answer
        np.testing.assert_array_equal(other, answers[0])
    detect = _run("edge-detect", "--model", str(out), "--source", str(data / "melanoma"), "--json")
    lines = [json.loads(line) for line in detect.stdout.splitlines() if line.strip()]
    assert len(lines) == 14 and all(line["label"] in contract.labels for line in lines)
    wrong = _run("convert", str(run), "--int8", "--data", str(data), "--views", "3", check=False)
    assert wrong.returncode == 2 and "--views" in wrong.stderr
    wrong = _run("convert", str(run), "--int8", "--data", str(data), "--zoom", "1", check=False)
    assert wrong.returncode == 2 and "--zoom" in wrong.stderr


def test_an_ensemble_of_two_runs_is_one_model_to_the_edge(trained, tmp_path):
    import shutil

    data, run = trained
    twin = tmp_path / "run_seed1"  # another run on the same split (here: the same model, which is enough to plumb)
    shutil.copytree(run, twin)
    out = tmp_path / "ensemble_int8.tflite"
    _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "10",
         "--views", "2", "--zoom", "0.75", "--ensemble", str(twin), "--min-agreement", "0")  # fmt: skip
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    single = read_contract(out)
    assert len(report["ensemble"]) == 1 and report["ensemble"][0].endswith("run_seed1/model.keras")
    assert report["zoom"] == single.metrics["zoom"] == 0.75  # two flips of the image and two of its centre
    detect = _run("edge-detect", "--model", str(out), "--source", str(data / "melanoma"), "--json")
    lines = [json.loads(line) for line in detect.stdout.splitlines() if line.strip()]
    assert len(lines) == 14 and all(line["label"] in single.labels for line in lines)

    from ai_edge_litert.interpreter import Interpreter

    features = Interpreter(model_path=str(out)).get_output_details()[1]["shape"]
    assert features[-1] == single.lesion_gate["dims"]  # both models' features, side by side
    split = json.loads((twin / "split.json").read_text())
    split["validation"] = split["validation"][1:]
    (twin / "split.json").write_text(json.dumps(split))
    wrong = _run("convert", str(run), "--int8", "--data", str(data), "--ensemble", str(twin), check=False)
    assert wrong.returncode == 1 and "split" in wrong.stderr and "Traceback" not in wrong.stderr


def test_an_ensemble_of_input_sizes_is_one_model_and_its_gate_reads_the_smaller_models_features(trained, tmp_path):
    import shutil

    import keras

    from training.model import build_classifier

    data, run = trained
    small = tmp_path / "run_48px"  # the same run's weights at 48 px: a smaller model on the same split
    shutil.copytree(run, small)
    model = build_classifier(3, image_size=48, arch="small")[0]
    model.set_weights(keras.models.load_model(run / "model.keras", compile=False).get_weights())
    model.save(small / "model.keras")
    contract = json.loads((small / "contract.json").read_text())
    (small / "contract.json").write_text(json.dumps({**contract, "image_size": 48}))
    out = tmp_path / "sizes_int8.tflite"
    _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "10",
         "--qat-epochs", "1", "--ensemble", str(small), "--min-agreement", "0")  # fmt: skip
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    assert report["input_sizes"] == [48, 64]
    single = read_contract(out)
    assert single.image_size == 64  # the largest; the 48 px model sees it resized inside the file
    width = single.lesion_gate["dims"]
    assert single.lesion_gate.get("start", 0) == 0 and report["lesion_gate"]["features"] == [0, width]

    from ai_edge_litert.interpreter import Interpreter

    assert Interpreter(model_path=str(out)).get_output_details()[1]["shape"][-1] == 2 * width
    detect = _run("edge-detect", "--model", str(out), "--source", str(data / "melanoma"), "--json")
    lines = [json.loads(line) for line in detect.stdout.splitlines() if line.strip()]
    assert len(lines) == 14
    assert all(line["label"] in single.labels and line["lesion_score"] is not None for line in lines)
    wrong = _run("convert", str(small), "--int8", "--data", str(data), "--ensemble", str(run), check=False)
    assert wrong.returncode == 1 and "image_size (larger: 64 px)" in wrong.stderr and "Traceback" not in wrong.stderr


def test_convert_with_quantization_aware_finetuning(trained, tmp_path):
    data, run = trained
    out = tmp_path / "qat_int8.tflite"
    _run("convert", str(run), "--int8", "--data", str(data), "--out", str(out), "--samples", "10",
         "--qat-epochs", "1", "--min-agreement", "0")  # fmt: skip
    report = json.loads(out.with_suffix(".fidelity.json").read_text())
    split = json.loads((run / "split.json").read_text())
    qat = report["qat"]
    assert {k: qat[k] for k in ("epochs", "learning_rate", "images")} == {
        "epochs": 1, "learning_rate": 3e-5, "images": len(split["train"]),
    }  # fmt: skip
    # the simulated int8 model is a better predictor of the file than chance
    assert 1 / 3 < qat["simulated_agreement_with_file"] <= 1
    assert read_contract(out).labels == ("keratosis", "melanoma", "nevus")

    wrong = _run("convert", str(run), "--float16", "--data", str(data), "--qat-epochs", "1", check=False)
    assert wrong.returncode == 2 and "--int8 only" in wrong.stderr
    wrong = _run("convert", str(run), "--float32", "--data", str(data), "--equalize", check=False)
    assert wrong.returncode == 2 and "No such option" in wrong.stderr  # measured, not kept (docs/BENCHMARKS.md)


def test_convert_refuses_a_broken_conversion(trained, tmp_path, monkeypatch):
    data, run = trained
    import keras

    import convert.quantize as quantize_mod
    from convert.cli import main

    real = quantize_mod.quantize

    def broken(model, config):  # converts a model whose logits come out in the wrong class order
        copy = keras.models.clone_model(model)
        weights = model.get_weights()
        kernel, bias = weights[-2:]  # the final Dense layer: class order rolled by one
        copy.set_weights([*weights[:-2], np.roll(kernel, 1, axis=-1), np.roll(bias, 1)])
        return real(copy, config)

    monkeypatch.setattr(quantize_mod, "quantize", broken)
    out = tmp_path / "broken.tflite"
    result = CliRunner().invoke(main, [str(run), "--data", str(data), "--out", str(out), "--samples", "10"])
    assert result.exit_code == 1, result.output
    assert "below --min-agreement" in result.output and "Nothing written" in result.output
    assert "Try --qat-epochs 1" in result.output  # what to try next
    assert not out.exists() and not list(tmp_path.glob(".broken*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing_run"], "does not exist"),
        (["{tmp}/model.h5"], "is not a Keras model"),
        (["{run}", "--out", "/nonexistent/dir/x.tflite"], "does not exist"),
    ],
)
def test_convert_bad_input_is_one_sentence(trained, tmp_path, args, message):
    data, run = trained
    (tmp_path / "model.h5").write_bytes(b"nope")
    args = [a.format(tmp=tmp_path, run=run) for a in args]
    proc = _run("convert", *args, "--data", str(data), check=False)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_convert_rejects_a_dataset_with_other_labels(trained, tmp_path):
    _, run = trained
    other = make_folder_dataset(tmp_path / "other", classes=("apple", "pear"), per_class=4)
    proc = _run("convert", str(run), "--data", str(other), "--out", str(tmp_path / "x.tflite"), check=False)
    assert proc.returncode == 1 and "does not know" in proc.stderr
    assert not (tmp_path / "x.tflite").exists()


def test_train_cli_errors_are_one_sentence(tmp_path):
    # --weights none: the data errors must show whether or not the offline ImageNet weights are at hand
    proc = _run("train", str(tmp_path / "nothing"), "--weights", "none", "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    single = make_folder_dataset(tmp_path / "single", classes=("nevus",), per_class=3)
    proc = _run("train", str(single), "--weights", "none", "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 1 and "single class" in proc.stderr
