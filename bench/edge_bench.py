"""Measure ``edge-detect`` as a kiosk would feel it, and print a Markdown table.

    python bench/edge_bench.py --model models/isic8_int8.tflite
    python bench/edge_bench.py --make-standin /tmp/mnv3s_int8.tflite   # needs TensorFlow ([train])

Measured, each through the installed ``edge-detect`` command in a fresh process:

- start time: process launch to the first JSON result on one image (median of ``--runs``);
- peak RSS: maximum resident memory of ``edge-detect`` classifying a 640x480 video (``wait4`` rusage);
- per-frame overhead: median time between results minus median ``invoke()``, as a fraction of
  ``invoke()``, from ``--benchmark`` on 640x480 video frames, pipelined (decode, preprocess and
  quality gate of the next frame overlap inference: the default) and ``--serial`` (one thread);
- CPU overhead: CPU time of the serial frame path beyond ``invoke()`` (``time.thread_time``, one
  thread, frames pre-decoded), robust to other processes on a shared machine;
- FPS: results per second over a whole 640x480 video run with ``--json`` (decode, gate, classify, JSON).

Targets (docs/BENCHMARKS.md): peak RSS <= 100 MB, start <= 1.5 s, overhead <= 25% of invoke.
Not a test: it takes about a minute and its numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from results import save

ISIC9 = (
    "actinic keratosis", "basal cell carcinoma", "dermatofibroma", "melanoma", "nevus",
    "pigmented benign keratosis", "seborrheic keratosis", "squamous cell carcinoma", "vascular lesion",
)  # fmt: skip
MALIGNANT = ("actinic keratosis", "basal cell carcinoma", "melanoma", "squamous cell carcinoma")


def make_standin(path: Path, samples: int = 32) -> Path:
    """A MobileNetV3-Small-sized int8 classifier (random weights) with an embedded contract."""
    import keras

    from convert.quantize import QuantizeConfig, quantize
    from edge.model.contract import ModelContract
    from edge.model.modelfile import embed_contract

    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(224, 224, 3), include_top=False, weights=None, pooling="avg"
    )
    model = keras.Sequential([backbone, keras.layers.Dense(len(ISIC9))])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (samples, 224, 224, 3)).astype(np.uint8)
    converted = quantize(model, QuantizeConfig.int8(images))
    contract = ModelContract(
        task="classify", labels=ISIC9, malignant_labels=MALIGNANT, arch="mobilenet_v3_small (stand-in, random)"
    )
    path.write_bytes(embed_contract(converted, contract))
    return path


def _lesion(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    img[:] = (214, 162, 140)
    img += cv2.GaussianBlur(rng.normal(0, 14, (height, width)).astype(np.float32), (0, 0), 1.2)[..., None]
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    r = min(height, width) * 0.2
    blob = np.clip(1.3 - ((yy - height / 2) / (0.8 * r)) ** 2 - ((xx - width / 2) / r) ** 2, 0, 1)[..., None]
    img = img * (1 - 0.5 * blob)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_inputs(folder: Path, frames: int) -> tuple[Path, Path]:
    """A 640x480 JPEG and a 640x480 MJPG video of ``frames`` slowly moving lesion frames."""
    image = folder / "lesion.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(_lesion(480, 640, 0), cv2.COLOR_RGB2BGR))
    video = folder / "lesion_640x480.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (640, 480))
    base = cv2.cvtColor(_lesion(480, 720, 1), cv2.COLOR_RGB2BGR)
    for i in range(frames):
        shift = int(40 * np.sin(i / 10))
        writer.write(np.ascontiguousarray(base[:, 40 + shift : 680 + shift]))
    writer.release()
    return image, video


def start_time(cmd: list[str], runs: int) -> tuple[float, list[float]]:
    """Median seconds from process launch to the first line on stdout."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline()
        times.append(time.perf_counter() - start)
        proc.communicate()
        if proc.returncode != 0 or not line:
            raise SystemExit(f"edge-detect failed (exit {proc.returncode}): {' '.join(cmd)}")
    return statistics.median(times), times


def run_video(cmd: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MB, results per second after the first result, results) of one run."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = last = None
    n = 0
    for _line in proc.stdout:
        last = time.perf_counter()
        first = first or last
        n += 1
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or n < 2:
        raise SystemExit(f"edge-detect failed (exit {proc.returncode}): {' '.join(cmd)}")
    return usage.ru_maxrss / 1024.0, (n - 1) / (last - first), n


class _TimedInterpreter:
    """Wraps an interpreter and adds up the CPU time of this thread spent inside ``invoke()``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.cpu: list[float] = []

    def invoke(self) -> None:
        start = time.thread_time()
        self._inner.invoke()
        self.cpu.append(time.thread_time() - start)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def cpu_overhead(model: Path, frames: int) -> dict[str, float]:
    """CPU time of the frame path beyond ``invoke()``, as a fraction of ``invoke()``'s CPU time.

    Runs the real pipeline (``iter_results``, serial, quality gate and smoothing on) in this
    process on pre-decoded 640x480 frames with one interpreter thread, so XNNPACK works in the
    calling thread and ``time.thread_time`` sees all of it. Other processes competing for the
    cores do not inflate the numbers, unlike wall-clock timings on a busy machine.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from edge.capture.frames import Frame
    from edge.model.classifier import Classifier
    from edge.run.pipeline import iter_results

    classifier = Classifier(model, threads=1)
    timed = _TimedInterpreter(classifier.model._interp)
    classifier.model._interp = timed
    images = [_lesion(480, 640, seed) for seed in range(3)]

    class Sequence(list):
        sequential = True

    batch = Sequence(Frame(images[i % 3], time.time(), "bench", i) for i in range(frames + 5))
    results = iter_results(classifier, batch, pipelined=False)
    path = []
    while True:
        start = time.thread_time()
        if next(results, None) is None:
            break
        path.append(time.thread_time() - start)
    invoke = np.array(timed.cpu[5:]) * 1000
    total = np.array(path[5:]) * 1000
    return {
        "invoke_ms": float(np.median(invoke)),
        "path_ms": float(np.median(total)),
        "overhead": float(np.median(total - invoke) / np.median(invoke)),
    }


BUDGET_MS = 10.0  # the classify step (preprocess + every invoke + postprocess), one thread, this x86 CPU
BUDGET_MB = 12.0  # the model files the edge loads, in all


def budget_rows(classify_ms: float, files: list[Path]) -> list[tuple[str, str, str, bool]]:
    """The edge budget beside the measured figures: (measure, value, budget, within it)."""
    mb = sum(f.stat().st_size for f in files) / 1e6
    names = ", ".join(f.name for f in files)
    return [
        ("classify step a 640x480 frame (preprocess, gates, invoke, postprocess), 1 thread", f"{classify_ms:.2f} ms",
         f"<= {BUDGET_MS:g} ms", classify_ms <= BUDGET_MS),
        (f"model files the edge loads ({names})", f"{mb:.2f} MB", f"<= {BUDGET_MB:g} MB", mb <= BUDGET_MB),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="the .tflite classifier to measure")
    parser.add_argument(
        "--beside",
        type=Path,
        action="append",
        default=[],
        help="another classifier whose classify step is timed in the same run (repeatable)",
    )
    parser.add_argument("--make-standin", type=Path, metavar="PATH", help="write a stand-in model and exit")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: runtime's)")
    parser.add_argument("--runs", type=int, default=5, help="start-time runs (median)")
    parser.add_argument("--frames", type=int, default=150, help="frames in the 640x480 test video")
    parser.add_argument("--bench-frames", type=int, default=200, help="frames for the overhead measurement")
    args = parser.parse_args()
    if args.make_standin:
        print(make_standin(args.make_standin))
        return
    if args.model is None or not args.model.is_file():
        parser.error("pass --model PATH to an existing .tflite (or --make-standin PATH)")
    exe = shutil.which("edge-detect", path=str(Path(sys.executable).parent)) or shutil.which("edge-detect")
    if exe is None:
        raise SystemExit("edge-detect is not installed: pip install -e .")
    base = [exe, "--model", str(args.model), "--log-level", "error", "--json"]
    if args.threads:
        base += ["--threads", str(args.threads)]

    with tempfile.TemporaryDirectory(prefix="edge_bench_") as tmp:
        image, video = write_inputs(Path(tmp), args.frames)
        start_median, starts = start_time([*base, "--source", str(image)], args.runs)
        peak_mb, fps, n = run_video([*base, "--source", str(video)])
        benches = {}
        for mode in ("--pipelined", "--serial"):
            proc = subprocess.run(
                [*base, "--source", str(video), "--benchmark", str(args.bench_frames), mode],
                capture_output=True,
                text=True,
                check=True,
            )
            benches[mode] = json.loads(proc.stdout)["benchmark"]
    piped, serial = benches["--pipelined"], benches["--serial"]
    pure = cpu_overhead(args.model, args.bench_frames)
    beside = {}
    if args.beside:  # the files alternately, twice, in this one process: their ratios are what carries over
        runs = [[cpu_overhead(m, args.bench_frames) for m in (args.model, *args.beside)] for _ in range(2)]
        pure = min((r[0] for r in runs), key=lambda r: r["path_ms"])
        beside = {m: min((r[i] for r in runs), key=lambda r: r["path_ms"]) for i, m in enumerate(args.beside, 1)}

    threads = args.threads or "runtime default"
    rows = [
        (f"start: launch to first result (median of {args.runs})", f"{start_median:.2f} s", "<= 1.5 s"),
        (f"peak RSS, 640x480 video ({n} frames)", f"{peak_mb:.0f} MB", "<= 100 MB"),
    ]
    for label, b in (("pipelined (default)", piped), ("--serial", serial)):
        inv, per = b["invoke_ms"]["p50"], b["period_ms"]["p50"]
        rows.append((f"per-frame overhead beyond invoke(), 640x480, {label}: period {per:.2f} ms vs invoke "
                     f"{inv:.2f} ms", f"{b['overhead']:.0%}", "<= 25%"))  # fmt: skip
    rows.append((f"CPU time beyond invoke(), serial, 1 thread: {pure['path_ms']:.2f} ms vs invoke "
                 f"{pure['invoke_ms']:.2f} ms", f"{pure['overhead']:.0%}", "<= 25%"))  # fmt: skip
    rows.append(("FPS, 640x480 video with --json", f"{fps:.1f}", "-"))
    files = sorted(args.model.parent.glob("*.tflite")) if args.model.parent.name == "models" else [args.model]
    for measure, value, budget, ok in budget_rows(pure["path_ms"], files):
        rows.append((measure, value + ("" if ok else " (over budget)"), budget))
    for m, b in beside.items():
        over = "" if b["path_ms"] <= BUDGET_MS else ", over budget"
        rows.append((f"the same classify step, {m.parent.name}/{m.name} in the same run (ratio to {args.model.name})",
                     f"{b['path_ms']:.2f} ms ({pure['path_ms'] / b['path_ms']:.2f}x{over})", "-"))  # fmt: skip
    for label, b in (("pipelined", piped), ("--serial", serial)):
        q = b["frame_ms"]
        rows.append((f"{label} frame latency p50 / p90 / p99", f"{q['p50']:.2f} / {q['p90']:.2f} / {q['p99']:.2f} ms",
                     "-"))  # fmt: skip
    print(f"edge-detect on {platform.machine()}, {os.cpu_count()} cores, {dt.date.today()}, threads: {threads}")
    print(f"model: {args.model} ({args.model.stat().st_size / 1e6:.2f} MB)\n")
    print("| measure | value | target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    command = f"python bench/edge_bench.py --model {args.model} --threads {args.threads}"
    command += "".join(f" --beside {m}" for m in args.beside)
    save("edge_bench", command, rows=[{"measure": m, "value": v, "target": t} for m, v, t in rows])


if __name__ == "__main__":
    main()
