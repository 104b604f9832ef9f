"""Peak memory of a `train` run: does it grow with the dataset?

    python bench/train_memory.py                                  # HAM10000, 224 px, one head epoch
    python bench/train_memory.py --tree /tmp/old-checkout --once  # the same run with another checkout's code

Runs ``train`` in a child process on 1,000 images and on all of them, each with an empty image cache,
then once more with the cache filled (what a second seed or a resumed run costs). Reports the peak
resident memory (``wait4`` rusage: it counts the memory-mapped cache pages the OS may drop at will),
the peak of anonymous memory alone (sampled from /proc every 0.2 s: what the process really holds)
and the wall time. Writes bench/results/train_memory.json. Not a test: minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ham10000"


def _anon_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("RssAnon")) / 1024
    except (OSError, StopIteration):
        return 0.0


def _run(tree: Path, args: list[str], cache: Path) -> dict:
    """Peak RSS and peak anonymous memory in MB, seconds and exit status of one `train` run."""
    env = {**os.environ, "PYTHONPATH": str(tree), "SKINEDGE_CACHE": str(cache), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = "import sys; from training.cli import main; sys.argv = ['train', *sys.argv[1:]]; main()"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=tree, env=env, stdout=subprocess.DEVNULL)
    anon = 0.0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        anon = max(anon, _anon_mb(proc.pid))
        time.sleep(0.2)
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024), "peak_anon_mb": round(anon),
            "seconds": round(time.monotonic() - started), "exit": os.waitstatus_to_exitcode(status)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose training code runs")
    parser.add_argument("--img-size", default="224")
    parser.add_argument("--once", action="store_true", help="only the run with an empty cache")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_memory.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("1000", "empty"), ("all", "empty"), ("all", "filled")]
        for images, cache in runs[1:2] if args.once else runs:
            train_args = [str(args.data.resolve()), "--out", f"{tmp}/run", "--img-size", args.img_size,
                          "--epochs", "0", "--head-epochs", "1"]  # fmt: skip
            if images != "all":
                train_args += ["--max-images", images]
            row = {"images": images, "cache": cache, **_run(args.tree.resolve(), train_args, Path(tmp) / images)}
            rows.append(row)
            print(row, file=sys.stderr)
    result = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "train": "train DATA --img-size " + args.img_size + " --epochs 0 --head-epochs 1",
        "data": os.path.relpath(args.data, ROOT),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": dt.date.today().isoformat(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
