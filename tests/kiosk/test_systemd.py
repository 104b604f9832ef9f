"""The systemd unit, its sandbox score and the installer (dry run and idempotence), without touching /etc.

``systemd-analyze verify`` checks that ExecStart= exists; the real unit points at the installed
/opt/skinedge/venv/bin/edge-detect, so the test verifies a copy whose ExecStart= runs this Python
instead (``--root`` would need a whole unit tree there: verify then wants sysinit.target).
The installer runs below a temporary SKINEDGE_ROOT, with stubs for useradd, userdel and Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.kiosk import ROOT

SYSTEMD = ROOT / "systemd"
UNIT = SYSTEMD / "edge-detect.service"
BROWSER_UNIT = SYSTEMD / "skinedge-kiosk-browser.service"
INSTALL = SYSTEMD / "install"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
needs_systemctl = pytest.mark.skipif(shutil.which("systemctl") is None, reason="needs systemctl")


def analyze(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@needs_analyze
def test_unit_verifies(tmp_path):
    as_is = analyze("verify", str(UNIT))
    complaints = [line for line in as_is.stderr.splitlines() if line.strip()]
    assert complaints, "expected verify to notice that /opt/skinedge is not installed here"
    for line in complaints:  # the only complaint: the venv is not installed on this machine
        assert "/opt/skinedge/venv/bin/edge-detect" in line and "not executable" in line, as_is.stderr
    text = UNIT.read_text()
    assert "ExecStart=/opt/skinedge/venv/bin/edge-detect --camera --serve ${EDGE_DETECT_SERVE}" in text
    copy = tmp_path / "edge-detect.service"
    copy.write_text(
        text.replace("ExecStart=/opt/skinedge/venv/bin/edge-detect", f"ExecStart={sys.executable} -m edge.app")
    )
    result = analyze("verify", str(copy))
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
def test_unit_settings_the_kiosk_relies_on():
    settings = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    one = {k: v[-1] for k, v in settings.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main" and one["WatchdogSec"] == "30"
    assert one["Restart"] == "on-failure" and one["User"] == "skinedge" and one["SupplementaryGroups"] == "video"
    assert one["DevicePolicy"] == "closed" and one["CapabilityBoundingSet"] == ""
    assert settings["DeviceAllow"] == ["char-video4linux rw", "char-media rw", "char-dma_heap rw"]
    assert one["EnvironmentFile"] == "-/etc/skinedge/edge-detect.env"
    assert "PrivateDevices" not in one  # it would hide the camera


@needs_analyze
def test_security_exposure_is_low():
    result = analyze("security", "--offline=yes", str(UNIT))
    match = re.search(r"Overall exposure level for edge-detect\.service: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    score = float(match.group(1))
    print(f"\nsystemd-analyze security --offline=yes: exposure {score} {match.group(2)}")
    assert score <= 2.0


@needs_analyze
def test_kiosk_browser_user_unit_verifies(tmp_path):
    result = analyze("verify", "--user", str(BROWSER_UNIT), env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path):
    """A PATH folder whose mutating commands only log; (folder, log)."""
    folder, log = tmp_path / "stubs", tmp_path / "calls.log"
    folder.mkdir()
    log.touch()
    for name in ("useradd", "userdel", "systemctl", "install", "rm", "rmdir", "pip", "python3", "chgrp"):
        _stub(folder, name, f'echo "{name} $*" >> {log}\nexit 1\n')
    return folder, log


def _install(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


@pytest.mark.parametrize("mode", [[], ["--uninstall"], ["--purge"], ["--kiosk-browser", "--no-start"]])
def test_dry_run_prints_the_plan_and_changes_nothing(stubs, mode):
    folder, log = stubs
    before = {
        p: p.exists()
        for p in (Path("/etc/skinedge"), Path("/opt/skinedge"), Path("/etc/systemd/system/edge-detect.service"))
    }
    env = {"PATH": f"{folder}:{os.environ['PATH']}", "PYTHON": str(folder / "python3")}
    env.pop("SKINEDGE_ROOT", None)
    result = _install("--dry-run", *mode, env=env)
    assert result.returncode == 0, result.stderr
    assert log.read_text() == "", "a dry run executed: " + log.read_text()
    assert {p: p.exists() for p in before} == before
    out = result.stdout
    assert out.startswith("dry run: nothing is changed")
    if not mode or "--kiosk-browser" in mode:
        if not Path("/etc/systemd/system/edge-detect.service").exists():
            # the unit as rendered for the prefix, from the installer's scratch folder
            rendered = r"\+ install -D -m 0644 \S+/edge-detect.service /etc/systemd/system/edge-detect.service"
            assert re.search(rendered, out)
        assert "+ systemctl enable edge-detect.service" in out
        assert f"--upgrade {ROOT}" in out
        if "--no-start" in mode:
            assert "systemctl restart" not in out
            assert "+ systemctl --global enable skinedge-kiosk-browser.service" in out
        else:
            assert "+ systemctl restart edge-detect.service" in out


def test_bad_usage():
    assert _install("--frobnicate", env={}).returncode == 2
    wrong = _install("--prefix", "/", "--dry-run", env={})
    assert wrong.returncode == 1 and "absolute directory other than /" in wrong.stderr


@needs_systemctl
def test_install_is_idempotent_and_uninstalls_cleanly(tmp_path):
    root, log, stub_dir = tmp_path / "root", tmp_path / "calls.log", tmp_path / "stubs"
    root.mkdir()
    stub_dir.mkdir()
    log.touch()
    # useradd/userdel edit $root/etc/passwd the way `--root` would; the "python" makes a venv whose pip logs
    passwd = root / "etc" / "passwd"
    _stub(
        stub_dir, "useradd", f'echo "useradd $*" >> {log}\nmkdir -p {passwd.parent}\necho skinedge:x:999: >> {passwd}\n'
    )
    _stub(stub_dir, "userdel", f'echo "userdel $*" >> {log}\nsed -i "/^skinedge:/d" {passwd}\n')
    fake_pip = f'#!/usr/bin/env bash\\necho "pip $*" >> {log}\\n'
    fake_python = [
        f'echo "python $*" >> {log}',
        'mkdir -p "$4/bin"',
        f"printf '{fake_pip}' > \"$4/bin/pip\"",
        "printf '#!/bin/sh\\n' > \"$4/bin/python\"",
        'chmod +x "$4/bin/pip" "$4/bin/python"',
    ]
    _stub(stub_dir, "fakepython", "\n".join(fake_python) + "\n")
    env = {"SKINEDGE_ROOT": str(root), "PATH": f"{stub_dir}:{os.environ['PATH']}"}
    env["PYTHON"] = str(stub_dir / "fakepython")

    first = _install(env=env)
    assert first.returncode == 0, first.stderr
    unit = root / "etc/systemd/system/edge-detect.service"
    settings = root / "etc/skinedge/edge-detect.env"
    assert unit.read_text() == UNIT.read_text()  # the default prefix: the unit as shipped
    assert settings.read_text() == (SYSTEMD / "edge-detect.env.example").read_text()
    assert settings.stat().st_mode & 0o777 == 0o640
    assert (root / "etc/systemd/system/multi-user.target.wants/edge-detect.service").is_symlink()
    calls = log.read_text().splitlines()
    assert sum(c.startswith("useradd --root") for c in calls) == 1
    assert sum(c.startswith("python -m venv --system-site-packages") for c in calls) == 1
    assert calls[-1].startswith("pip install") and calls[-1].endswith(str(ROOT))

    settings.write_text("EDGE_DETECT_SERVE=127.0.0.1:9000\n")  # the operator's edit
    log.write_text("")
    second = _install(env=env)
    assert second.returncode == 0, second.stderr
    calls = log.read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["pip"], calls  # no new user, no new venv; pip refreshes the package
    assert "user skinedge exists" in second.stdout and "venv exists" in second.stdout
    assert f"unchanged: {unit}" in second.stdout and f"keeping settings: {settings}" in second.stdout
    assert settings.read_text() == "EDGE_DETECT_SERVE=127.0.0.1:9000\n"

    removed = _install("--uninstall", env=env)
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists() and not (root / "opt/skinedge").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/edge-detect.service").exists()
    assert settings.exists() and "kept settings" in removed.stdout
    again = _install("--uninstall", env=env)
    assert again.returncode == 0 and "not installed" in again.stdout

    purged = _install("--purge", env=env)
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/skinedge").exists()
    assert "skinedge:" not in (root / "etc/passwd").read_text()


@needs_systemctl
@needs_analyze
def test_install_prefix_names_its_paths_in_the_unit_and_settings(tmp_path):
    root, stub_dir = tmp_path / "root", tmp_path / "stubs"
    stub_dir.mkdir()
    passwd = root / "etc" / "passwd"
    _stub(stub_dir, "useradd", f"mkdir -p {passwd.parent}\necho skinedge:x:999: >> {passwd}\n")
    # a "python" whose venv's pip does nothing and whose edge-detect is this checkout's
    fake_python = [
        'mkdir -p "$4/bin"',
        "printf '#!/bin/sh\\n' > \"$4/bin/pip\"",
        f'printf \'#!/bin/sh\\nexec {sys.executable} -m edge.app "$@"\\n\' > "$4/bin/edge-detect"',
        "printf '#!/bin/sh\\n' > \"$4/bin/python\"",
        'chmod +x "$4/bin/pip" "$4/bin/python" "$4/bin/edge-detect"',
    ]
    _stub(stub_dir, "fakepython", "\n".join(fake_python) + "\n")
    env = {"SKINEDGE_ROOT": str(root), "PATH": f"{stub_dir}:{os.environ['PATH']}"}
    env["PYTHON"] = str(stub_dir / "fakepython")
    prefix = str(root / "srv/kiosk")  # below the test root, so verify finds the installed executable
    result = _install("--prefix", "/srv/kiosk", env=env)
    assert result.returncode == 0, result.stderr
    unit = (root / "etc/systemd/system/edge-detect.service").read_text()
    settings = (root / "etc/skinedge/edge-detect.env").read_text()
    assert "/opt/skinedge" not in unit and "/opt/skinedge" not in settings
    assert "ExecStart=/srv/kiosk/venv/bin/edge-detect --camera" in unit
    assert "EDGE_DETECT_MODEL=/srv/kiosk/models/isic8_int8.tflite" in settings
    assert (root / "srv/kiosk/venv/bin/edge-detect").is_file()
    copy = tmp_path / "edge-detect.service"  # the installed unit as systemd would see it at /srv/kiosk
    copy.write_text(unit.replace("/srv/kiosk", prefix))
    verified = analyze("verify", str(copy))
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
