"""Time the README's two quick-start commands: `make demo` on a fresh clone, `make test` here.

    python bench/quickstart.py            # ~10 min; bench/results/suite.json

`make demo` runs in a clone of the current commit (the edge-only install, as a newcomer gets it);
`make test` runs in this checkout with its virtual environment already installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from results import save

ROOT = Path(__file__).resolve().parents[1]


def timed(command: str, cwd: Path) -> tuple[float, str]:
    start = time.monotonic()
    done = subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True)
    output = done.stdout + done.stderr
    if done.returncode:
        raise SystemExit(f"`{command}` failed in {cwd}:\n{output[-3000:]}")
    return time.monotonic() - start, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-test", action="store_true", help="time the demo only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        (clone.parent / "shared").symlink_to(ROOT.parent / "shared")  # the clone's ../shared, as here
        seconds, output = timed("make demo", clone)
        summary = [line for line in output.splitlines() if "classified" in line]
        rows.append({"what": "demo on a fresh clone (edge-only install, no TensorFlow)", "command": "make demo",
                     "seconds": round(seconds), "result": summary[-1].strip() if summary else ""})  # fmt: skip
    if not args.skip_test:
        seconds, output = timed("make test", ROOT)
        summary = re.findall(r"\d+ passed[^\n=]*", output)
        rows.append({"what": "ruff + the whole test suite", "command": "make test", "seconds": round(seconds),
                     "result": summary[-1].strip() if summary else ""})  # fmt: skip
    print(save("suite", "python bench/quickstart.py", rows=rows))


if __name__ == "__main__":
    main()
