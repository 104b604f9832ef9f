"""Resident memory of a real kiosk: after start, and at its peak while four clients upload photo bombs.

    python bench/kiosk_memory.py [--model models/isic8_int8.tflite]

Starts ``edge-detect --source VIDEO --loop --serve 127.0.0.1:PORT`` on a generated 640x480 video (no
camera here), waits for the page, reads ``/proc/PID/status`` (VmRSS, RssAnon, RssFile), then sends
eight uploads from four loopback addresses at once: a 2800x2800 PNG (the largest PNG decoded) and a
6000x6000 JPEG (read at 1/4 scale), each a few hundred KB on the wire; reports VmHWM. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from results import save

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kiosk"))

from kiosk_support import free_port, kiosk_process, write_video  # noqa: E402


def _status(pid: int) -> dict[str, float]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) / 1024 for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile")}


def _upload(port: int, photo: bytes, client: str) -> int:
    import http.client

    boundary = "bench"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\n'.encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(client, 0))
    try:
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "Host": "127.0.0.1"}
        conn.request("POST", "/classify", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "isic8_int8.tflite")
    args = parser.parse_args()
    video = write_video(Path("/tmp") / "skinedge-bench-640.avi", frames=60, size=(640, 480))
    png = cv2.imencode(".png", np.full((2800, 2800, 3), 200, np.uint8))[1].tobytes()
    jpeg = cv2.imencode(".jpg", np.full((6000, 6000, 3), 180, np.uint8))[1].tobytes()
    port = free_port()
    with kiosk_process(args.model, video, port, "--loop") as proc:
        time.sleep(5)  # frames flowing for a while
        started = _status(proc.pid)
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda n: _upload(port, [png, jpeg][n % 2], f"127.0.0.{30 + n % 4}"), range(8)))
        after = _status(proc.pid)
        alive = proc.poll() is None
    figures = {
        "model": args.model.name,
        "after_start_mb": {k: round(v, 1) for k, v in started.items() if k != "VmHWM"},
        "bomb_statuses": statuses,
        "peak_mb": round(after["VmHWM"], 1),
        "alive": alive,
    }
    print(json.dumps(figures, indent=2))
    rss = figures["after_start_mb"].get("VmRSS")
    rows = [
        {"measure": f"resident memory after start, 640x480 video at 10 fps, {args.model.name}", "value": f"{rss} MB",
         "goal": "<= 100 MB"},
        {"measure": "peak resident memory, eight concurrent photo bombs from four clients",
         "value": f"{figures['peak_mb']} MB; answers {sorted(set(statuses))}; alive: {alive}", "goal": "<= 300 MB"},
    ]  # fmt: skip
    save("kiosk_memory", "python bench/kiosk_memory.py", rows=rows, **figures)


if __name__ == "__main__":
    main()
