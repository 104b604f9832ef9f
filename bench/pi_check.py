"""The Raspberry Pi path under emulation: install the edge package on arm64 Debian and compare its answers with x86.

    sudo make pi-check                       # or: sudo .venv/bin/python bench/pi_check.py [--images 200]

Run as root on Debian x86_64 (it mounts, chroots and registers QEMU with binfmt_misc). It builds,
once, an arm64 Debian bookworm root filesystem (the base of Raspberry Pi OS: Python 3.11, glibc 2.36)
in build/pi-rootfs with debootstrap, installs the package there as the README tells a Pi user
(a venv with --system-site-packages, ``pip install -e .``), then, emulating a Pi 4 (Cortex-A72) and
a Pi 5 (Cortex-A76):

- ``edge-detect --json`` on a fixed set of shared images with every shipped classifier, and the same
  on this x86 machine: top-1 and flag agreement and the largest probability difference, per model;
- ``bench/pi_probe.py``: a SHA-256 of every preprocessed input tensor on both platforms (they must match);
- ``edge-detect --inspect`` and the kiosk (``--serve`` on loopback: ``/healthz`` and one upload).

Writes bench/results/pi_check.json and prints a Markdown table. Not part of `make test`: it needs
root and about half an hour (emulation runs ~100x slower than a Pi). Everything it mounts is
unmounted on exit, whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ROOTFS = ROOT / "build" / "pi-rootfs"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
MIRROR = "http://deb.debian.org/debian"
CPUS = {"pi4": "cortex-a72", "pi5": "cortex-a76"}
# What a Pi's kernel shows; the host's x86 /proc/cpuinfo would crash the interpreter's CPU detection.
CPUINFO = {
    "cortex-a72": ("0xd08", "fp asimd evtstrm crc32 cpuid", "Raspberry Pi 4 Model B Rev 1.4"),
    "cortex-a76": (
        "0xd0b",
        "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
        "Raspberry Pi 5 Model B Rev 1.0",
    ),
}
MODELS = ("isic8_int8.tflite",)
SEGMENTER = "lesion_segment_int8.tflite"
SEGMENTED = "isic8_int8.tflite on the lesion found by lesion_segment_int8.tflite"


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, **kw)


def log(message: str) -> None:
    print(f"[pi-check {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_tools() -> list:
    """Debootstrap and QEMU installed, QEMU registered with binfmt_misc; returns the steps that undo
    what was registered or mounted here, so the host is left as it was found."""
    undo = []
    missing = [p for p in ("debootstrap", "qemu-aarch64-static") if shutil.which(p) is None]
    if missing:
        log(f"installing {' '.join(missing)} from Debian")
        sh(
            "apt-get",
            "install",
            "-y",
            "-qq",
            "debootstrap",
            "qemu-user-static",
            "binfmt-support",
            stdout=subprocess.DEVNULL,
        )
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        sh("mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt))
        undo.append(lambda: subprocess.run(["umount", str(binfmt)], check=False))
    if not (binfmt / "qemu-aarch64").exists():
        sh("/usr/lib/systemd/systemd-binfmt", "/usr/lib/binfmt.d/qemu-aarch64.conf")
        undo.append(lambda: (binfmt / "qemu-aarch64").write_text("-1"))
    return undo


def ensure_rootfs() -> None:
    ready = ROOTFS / ".skinedge-rootfs"
    if ready.is_file():
        return
    if ROOTFS.exists():
        _refuse_if_mounted(ROOTFS)
        shutil.rmtree(ROOTFS)
    log("building the arm64 Debian bookworm root filesystem (a few minutes)")
    sh(
        "debootstrap",
        "--arch=arm64",
        "--foreign",
        "--variant=minbase",
        "--include=python3,python3-venv,python3-pip,ca-certificates",
        "bookworm",
        str(ROOTFS),
        MIRROR,
        stdout=subprocess.DEVNULL,
    )
    sh(CHROOT, str(ROOTFS), "/debootstrap/debootstrap", "--second-stage", stdout=subprocess.DEVNULL)
    ready.write_text(dt.datetime.now().isoformat())


def _refuse_if_mounted(path: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text()
    if f" {path}" in mounts:
        raise SystemExit(f"{path} still has file systems mounted in it; unmount them first (never delete it then)")


@contextlib.contextmanager
def mounted(cpu: str):
    """/proc, /sys, /dev, the shared data and a Pi's /proc/cpuinfo inside the root filesystem; all undone on exit."""
    done: list[Path] = []
    fake = Path(tempfile.mkstemp(prefix="cpuinfo-")[1])
    part, features, model = CPUINFO[cpu]
    cores = "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 3\n\n"
        for i in range(4)
    )
    fake.write_text(cores + f"Hardware\t: BCM2835\nModel\t\t: {model}\n")
    try:
        for args, target in (
            (("-t", "proc", "proc"), ROOTFS / "proc"),
            (("--bind", "/sys"), ROOTFS / "sys"),
            (("--bind", "/dev"), ROOTFS / "dev"),
            (("--bind", str(fake)), ROOTFS / "proc" / "cpuinfo"),
            (("--bind", "-o", "ro", str(SHARED)), ROOTFS / "opt" / "shared" / "data"),
        ):
            target.mkdir(parents=True, exist_ok=True) if target.name != "cpuinfo" else None
            sh("mount", *args, str(target))
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)
        fake.unlink(missing_ok=True)


def copy_checkout() -> None:
    """The project as a Pi user's clone: the tracked files (and shipped models) under /opt/skinedge."""
    dest = ROOTFS / "opt" / "skinedge"
    shutil.rmtree(dest, ignore_errors=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def in_pi(cpu: str, *cmd: str, timeout: int = 3600, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": "/opt/venv/bin:/usr/bin:/bin", "HOME": "/root", "QEMU_CPU": cpu, "LANG": "C.UTF-8",
           "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    return subprocess.run([CHROOT, str(ROOTFS), *cmd], env=env, text=True, capture_output=True, timeout=timeout, **kw)


def install(cpu: str) -> str:
    # this machine's name servers and trusted certificates (a proxy's own CA among them) for pip
    shutil.copy("/etc/resolv.conf", ROOTFS / "etc" / "resolv.conf")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", ROOTFS / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    if not (ROOTFS / "opt" / "venv" / "bin" / "edge-detect").exists():
        log("installing the edge package in the emulated Pi (python3 -m venv --system-site-packages; pip install -e .)")
        for cmd in (
            ("python3", "-m", "venv", "--system-site-packages", "/opt/venv"),
            ("/opt/venv/bin/pip", "install", "--quiet", "-e", "/opt/skinedge"),
        ):
            proc = in_pi(cpu, *cmd)
            if proc.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed in the emulated Pi:\n{proc.stderr[-3000:]}")
    else:  # the checkout changed: reinstall without dependencies
        in_pi(cpu, "/opt/venv/bin/pip", "install", "--quiet", "--no-deps", "-e", "/opt/skinedge")
    return in_pi(cpu, "/opt/venv/bin/pip", "list", "--format=freeze").stdout


def image_list(count: int) -> list[str]:
    """A fixed set: evenly spaced images of isic9, the benign/malignant set and PH2, as paths under shared/data."""
    pools = [
        sorted((SHARED / "isic9" / "train").rglob("*.jpg")),
        sorted((SHARED / "malignant-vs-benign" / "train").rglob("*.jpg")),
        sorted(p for p in (SHARED / "ph2" / "images").iterdir() if p.suffix.lower() in (".jpg", ".bmp", ".png")),
    ]
    picked: list[Path] = []
    for k, pool in enumerate(pools):
        share = count // len(pools) + (1 if k < count % len(pools) else 0)
        picked += pool[:: max(1, len(pool) // share)][:share]
    return [str(p.relative_to(SHARED)) for p in picked]


def run_platform(label: str, runner, images: list[str], data: str, skinedge: str, tree: Path) -> dict:
    """edge-detect --json per model and the tensor probe, through ``runner(*cmd)``.

    ``tree`` is where the runner's ``skinedge`` checkout lies on this machine; ``data`` is the shared
    data as the runner sees it.
    """
    out: dict = {"models": {}}
    listing = tree / "build" / "pi-check" / f"{label}-images"
    shutil.rmtree(listing, ignore_errors=True)
    listing.mkdir(parents=True)
    for name in images:  # a folder of links: edge-detect reads it like any folder
        (listing / name.replace("/", "__")).symlink_to(f"{data}/{name}")
    folder = f"{skinedge}/{listing.relative_to(tree)}"
    for model, extra in [(m, ()) for m in MODELS] + [(SEGMENTED, ("--segment", f"{skinedge}/models/{SEGMENTER}"))]:
        started = time.monotonic()
        name = model if not extra else SEGMENTED
        proc = runner(
            "edge-detect", "--model", f"{skinedge}/models/{MODELS[0] if extra else model}", "--source", folder,
            "--json", "--no-quality-gate", *extra,
        )  # fmt: skip
        records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        out["models"][name] = {
            Path(r["source"]).name: {"label": r["label"], "flagged": r["flagged"], "probabilities": r["probabilities"],
                                     "lesion": r.get("lesion")}
            for r in records
            if "label" in r
        }  # fmt: skip
        log(f"{label}: {name}: {len(out['models'][name])} images in {time.monotonic() - started:.0f} s")
    probe = runner("python", f"{skinedge}/bench/pi_probe.py", folder, *[f"{skinedge}/models/{m}" for m in MODELS])
    out["tensors"] = json.loads(probe.stdout) if probe.returncode == 0 else {"error": probe.stderr[-2000:]}
    inspect = runner("edge-detect", "--inspect")
    out["inspect"] = inspect.returncode == 0 and '"labels"' in inspect.stdout
    return out


def kiosk_check(cpu: str) -> dict:
    """The kiosk in the emulated Pi: it starts, /healthz answers, an upload is classified."""
    port = 18000 + os.getpid() % 1000
    env = {"PATH": "/opt/venv/bin:/usr/bin:/bin", "HOME": "/root", "QEMU_CPU": cpu}
    sample = next((SHARED / "isic9" / "train").rglob("*.jpg"))
    proc = subprocess.Popen(  # as the unit runs it: the camera (absent here) and the page, ready either way
        [CHROOT, str(ROOTFS), "edge-detect", "--camera", "--serve", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = {"healthz": None, "upload": None}
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and result["healthz"] is None:
            if proc.poll() is not None:
                raise RuntimeError(f"the kiosk exited ({proc.returncode}): {proc.stderr.read()[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as r:
                    result["healthz"] = r.status
            except urllib.error.HTTPError as exc:
                result["healthz"] = exc.code  # 503 without a camera: the page is up and says why
            except OSError:
                time.sleep(2)
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + sample.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/classify",
            data=body,
            method="POST",
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request, timeout=300) as r:
            answer = json.loads(r.read())
            result["upload"] = {"status": r.status, "label": answer.get("prediction", answer).get("label")}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the table says what failed
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result


def compare(x86: dict, arm: dict) -> dict:
    rows = {}
    for model, ours in x86["models"].items():
        theirs = arm["models"].get(model, {})
        common = sorted(set(ours) & set(theirs))
        top1 = sum(ours[k]["label"] == theirs[k]["label"] for k in common)
        flag = sum(ours[k]["flagged"] == theirs[k]["flagged"] for k in common)
        diff = max(
            (
                abs(ours[k]["probabilities"][c] - theirs[k]["probabilities"][c])
                for k in common
                for c in ours[k]["probabilities"]
            ),
            default=float("nan"),
        )
        rows[model] = {
            "images": len(common),
            "of": len(ours),
            "top1_agreement": top1 / max(len(common), 1),
            "flag_agreement": flag / max(len(common), 1),
            "max_probability_difference": round(diff, 4),
        }
        lesions = [(ours[k]["lesion"], theirs[k]["lesion"]) for k in common if ours[k]["lesion"]]
        if lesions:
            rows[model]["lesion_boxes_identical"] = sum(a["box"] == b["box"] for a, b in lesions)
            rows[model]["max_lesion_area_difference"] = max(
                abs(a["area_fraction"] - b["area_fraction"]) for a, b in lesions
            )
    t86, tarm = x86.get("tensors", {}), arm.get("tensors", {})
    same = [k for k in t86 if t86[k] == tarm.get(k)]
    rows["preprocessed tensors identical"] = f"{len(same)} of {len(t86)}"
    return rows


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # unwinds through the unmounts


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=201)
    parser.add_argument("--cpus", nargs="+", default=list(CPUS), choices=list(CPUS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pi_check.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("pi-check needs root (debootstrap, mounts, chroot): run it with sudo")
    if not SHARED.is_dir():
        raise SystemExit(f"pi-check compares answers on the shared images, and {SHARED} is absent")
    started = time.monotonic()
    undo = ensure_tools()
    try:
        ensure_rootfs()
        copy_checkout()
        images = image_list(args.images)
        bin_dir = Path(sys.executable).parent

        def on_x86(cmd: str, *rest: str) -> subprocess.CompletedProcess:
            exe = str(bin_dir / cmd) if (bin_dir / cmd).exists() else cmd
            return subprocess.run(
                [exe, *rest], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
            )

        log(f"x86: {len(images)} images")
        x86 = run_platform("x86", on_x86, images, str(SHARED), str(ROOT), ROOT)
        report = {"date": dt.date.today().isoformat(), "images": len(images), "command": "sudo make pi-check"}
        for board in args.cpus:
            cpu = CPUS[board]
            with mounted(cpu):
                versions = install(cpu)
                log(f"{board} ({cpu}): running")
                arm = run_platform(
                    board,
                    lambda *c, cpu=cpu: in_pi(cpu, *c),
                    images,
                    "/opt/shared/data",
                    "/opt/skinedge",
                    ROOTFS / "opt" / "skinedge",
                )
                report[board] = {
                    "cpu": cpu,
                    "inspect": arm["inspect"],
                    "kiosk": kiosk_check(cpu),
                    "compare": compare(x86, arm),
                    "packages": [
                        v
                        for v in versions.splitlines()
                        if v.split("==")[0] in ("ai-edge-litert", "numpy", "opencv-python-headless")
                    ],
                }
        report["minutes"] = round((time.monotonic() - started) / 60, 1)
        report["machine"] = "arm64 Debian bookworm under QEMU 7.2 user emulation on an x86_64 host"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))

    finally:
        for step in reversed(undo):  # the host as it was found
            step()


if __name__ == "__main__":
    main()
