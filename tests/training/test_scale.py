"""Training at scale: the streamed input pipeline, tf.distribute strategies, resumable runs, logs."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from edge.datasets import DatasetError, load_dataset
from edge.model.contract import ModelContract
from tests.conftest import ROOT, make_folder_dataset
from tests.conftest import run_command as _run
from tests.helpers.runs import command, stopped_after_a_checkpoint
from training.fitloop import Phase
from training.pipeline import ImageRows
from training.splits import load_images

TINY = ("--weights", "none", "--img-size", "32", "--batch-size", "4")


def _contract(labels: tuple[str, ...], size: int = 48) -> ModelContract:
    return ModelContract(task="classify", labels=labels, image_size=size)


def test_image_rows_read_only_the_rows_asked_for_in_the_order_asked():
    a, b = np.arange(5 * 2).reshape(5, 2, 1, 1), 100 + np.arange(3 * 2).reshape(3, 2, 1, 1)
    rows = ImageRows.concat([ImageRows.of(a).rows(np.array([4, 1])), ImageRows.of(b)])
    assert len(rows) == 5 and rows.shape == (5, 2, 1, 1)
    expected = np.stack([a[4], a[1], b[0], b[1], b[2]])
    np.testing.assert_array_equal(np.asarray(rows), expected)
    np.testing.assert_array_equal(rows[np.array([3, 0, 2])], expected[[3, 0, 2]])
    np.testing.assert_array_equal(rows[1:4], expected[1:4])
    np.testing.assert_array_equal(rows.rows(np.array([4, 1]))[:], expected[[4, 1]])
    assert len(ImageRows([])) == 0 and len(rows.rows(np.array([], dtype=int))) == 0


def test_cache_holds_the_preprocessed_images_and_is_reused(tmp_path):
    ds = load_dataset(make_folder_dataset(tmp_path / "data", per_class=4))
    (tmp_path / "data" / "nevus" / "broken.jpg").write_bytes(b"not an image")
    ds = load_dataset(tmp_path / "data")
    contract = _contract(ds.labels)
    plain = load_images(ds.samples, contract)
    cached = load_images(ds.samples, contract, cache=tmp_path / "cache")
    assert isinstance(cached.images, ImageRows) and len(cached.skipped) == 1
    np.testing.assert_array_equal(np.asarray(cached.images), plain.images)
    assert cached.md5 == plain.md5 and np.allclose(cached.descriptors, plain.descriptors)
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    again = load_images(ds.samples, contract, cache=tmp_path / "cache")  # read back, not rebuilt
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files
    np.testing.assert_array_equal(np.asarray(again.images), plain.images)
    other = load_images(ds.samples, contract.replace(image_size=40), cache=tmp_path / "cache")
    assert other.images.shape[1:] == (40, 40, 3)  # another preprocessing is another cache entry


def test_a_full_disk_is_one_sentence_and_leaves_no_partial_cache(tmp_path, monkeypatch):
    ds = load_dataset(make_folder_dataset(tmp_path / "data", per_class=2))

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(DatasetError, match="No space left on device; free some space or point SKINEDGE_CACHE"):
        load_images(ds.samples, _contract(ds.labels), cache=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_pipeline_feeds_exactly_the_preprocessed_images_with_their_targets(tmp_path):
    pytest.importorskip("tensorflow")
    from training.pipeline import image_dataset

    ds = load_dataset(make_folder_dataset(tmp_path / "data", per_class=5))
    contract = _contract(ds.labels)
    expected = load_images(ds.samples, contract).images
    cached = load_images(ds.samples, contract, cache=tmp_path / "cache")
    targets = np.eye(len(expected), dtype="float32")  # one-hot of the row number: says which image came
    seen = {}
    for x, t in image_dataset(cached.images, targets, batch_size=4, seed=0):
        for image, target in zip(x.numpy(), t.numpy()):
            seen[int(target.argmax())] = image
    assert sorted(seen) == list(range(len(expected)))  # every image once per epoch
    for row, image in seen.items():
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, expected[row].astype(np.float32))


@pytest.mark.slow
@pytest.mark.training
def test_mirrored_strategy_over_two_cpu_devices_trains_with_the_global_batch(tmp_path):
    pytest.importorskip("tensorflow")
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training.train import TrainConfig, train
train(TrainConfig(data={str(data)!r}, out={str(tmp_path / "run")!r}, weights="none", image_size=32, batch_size=4,
                  head_epochs=0, epochs=1, strategy="mirrored"))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    strategy = {"strategy": "MirroredStrategy, 2 replicas (CPU)", "global_batch": 8, "replicas": 2}
    assert metrics["distribution"] == strategy
    assert metrics["epochs"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.training
def test_two_workers_train_one_model_and_only_the_chief_writes(tmp_path):
    pytest.importorskip("tensorflow")
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        task = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(task)}
        cmd = [str(Path(sys.executable).parent / "train"), str(data), "--out", str(tmp_path / f"run{index}"),
               "--strategy", "multi-worker", "--epochs", "1", "--head-epochs", "0", *TINY]  # fmt: skip
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    digests = [next(line for line in err.splitlines() if "final weights" in line) for _, err in outputs]
    assert digests[0] == digests[1]  # one model: the same weights on both machines
    assert "2 replicas" in outputs[0][1] and "global batch 8 (4 per replica)" in outputs[0][1]
    assert (tmp_path / "run0" / "model.keras").is_file() and not (tmp_path / "run1").exists()


@pytest.mark.slow
@pytest.mark.training
def test_a_run_stopped_after_its_first_epoch_resumes_to_the_same_end(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    cmd = command("train", str(data), "--out", str(run), "--epochs", "3", "--head-epochs", "0", "--patience", "9",
                  *TINY)  # fmt: skip
    returncode, err = stopped_after_a_checkpoint(cmd, run)
    assert returncode == 130, err[-3000:]
    assert f"continue with `train --resume {run}`" in err and "Traceback" not in err
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert 1 <= state["epoch"] < 3 and not (run / "model.keras").exists()

    resumed = _run("train", "--resume", str(run))
    assert f"resuming {run} after epoch {state['epoch']}" in resumed.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and len(metrics["history"]["loss"]) == 3  # as the uninterrupted run
    with (run / "log.csv").open() as fh:
        assert [int(r["epoch"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert list((run / "logs").iterdir()) and not (run / "checkpoint").exists()
    for name in ("model.keras", "contract.json", "split.json", "model_card.md", "training_curves.png"):
        assert (run / name).is_file(), name
    again = _run("train", "--resume", str(run), check=False)
    assert again.returncode == 1 and "finished already: nothing to resume" in again.stderr


def test_a_stop_request_ends_training_after_the_step_and_never_records_a_partial_epoch():
    from edge.run.stopping import StopSignals
    from training.fitloop import _epoch_callback

    ended = []
    stop = StopSignals()
    callback = _epoch_callback(Phase("fine-tune", 3, 1e-3, True, True), 4, 2, lambda *a: ended.append(a[1]), stop)
    callback.set_model(types.SimpleNamespace(stop_training=False))
    callback.on_epoch_begin(0)
    for step in range(4):
        callback.on_train_batch_end(step)
    callback.on_epoch_end(0)
    assert ended == [0] and not callback.model.stop_training
    callback.on_epoch_begin(1)
    callback.on_train_batch_end(0)
    stop(signal.SIGTERM, None)  # the handler only asks; the step in flight finishes
    assert not callback.model.stop_training
    callback.on_train_batch_end(1)
    assert callback.model.stop_training  # Keras leaves the epoch here
    callback.on_epoch_end(1)
    assert ended == [0]  # two of four steps: not an epoch
    with pytest.raises(KeyboardInterrupt):
        stop.check()
    with pytest.raises(KeyboardInterrupt):  # a second signal stops at once
        stop(signal.SIGTERM, None)


@pytest.mark.training
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_first_step_is_traced_stops_with_one_sentence(tmp_path, signum):
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    run = tmp_path / "run"
    cmd = [str(Path(sys.executable).parent / "train"), str(data), "--out", str(run), "--epochs", "2",
           "--head-epochs", "0", *TINY]  # fmt: skip
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    err = ""
    for line in proc.stderr:  # the phase line comes just before Keras traces the training step
        err += line
        if "phase fine-tune" in line:
            proc.send_signal(signum)
            break
    err += proc.communicate(timeout=300)[1]
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted before the first epoch ended: nothing was kept" in err and "Traceback" not in err
    assert not run.exists()


@pytest.mark.training
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "multi-worker"), "--strategy multi-worker needs TF_CONFIG"),
        (("--mixed-precision",), "--mixed-precision needs a GPU"),
        (("--arch", "large", "--weights", "imagenet"), "no ImageNet weights for --arch large at hand offline"),
    ],
)
def test_a_failed_start_says_why_in_one_sentence_and_leaves_no_run_folder(tmp_path, args, message):
    data = make_folder_dataset(tmp_path / "data", per_class=6)
    env_free = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    cmd = [str(Path(sys.executable).parent / "train"), str(data), "--out", str(tmp_path / "run"), *TINY, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_free, timeout=300)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_train_start_up_is_quiet_unless_verbose(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=2)
    proc = _run("train", str(data), "--strategy", "multi-worker", check=False)  # fails fast, after TF starts
    assert "oneDNN" not in proc.stderr and "cuInit" not in proc.stderr and "absl" not in proc.stderr
