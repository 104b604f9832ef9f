"""The edge path never imports TensorFlow: checked in fresh interpreters, since the test process has it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2

from tests.conftest import make_folder_dataset
from tests.edge.edge_synth import make_lesion

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "tf_keras", "jax", "torch")

BLOCKED_RUN = """
import json, sys
for name in {heavy!r}:
    sys.modules[name] = None  # any import of these now fails loudly
from {module} import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r} and sys.modules[m] is not None)
print(json.dumps({{"exit": code, "loaded": loaded}}), file=sys.stderr)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_edge_modules_import_without_tensorflow():
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "edge").rglob("*.py")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY + ('training', 'convert')!r}))\n"
    )
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"the edge package pulled in {proc.stdout.strip()} (nor the training half)"


def test_classifying_an_image_works_with_tensorflow_blocked(tiny_tflite, tmp_path):
    image = tmp_path / "lesion.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(make_lesion(240, 320), cv2.COLOR_RGB2BGR))
    code = BLOCKED_RUN.format(heavy=HEAVY, module="edge.app")
    proc = _python(code, "--model", str(tiny_tflite), "--source", str(image), "--json")
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    assert status == {"exit": 0, "loaded": []}, proc.stderr
    record = json.loads(proc.stdout)
    assert record["source"] == str(image) and record["label"] in ("nevus", "melanoma", "keratosis")


def test_recalibrating_works_with_tensorflow_and_scikit_learn_blocked(tiny_tflite, tmp_path):
    """The edge install has neither: a clinic recalibrates on the kiosk itself."""
    data = make_folder_dataset(tmp_path / "site", per_class=12)
    blocked = (*HEAVY, "sklearn", "scipy", "matplotlib")
    code = BLOCKED_RUN.format(heavy=blocked, module="edge.model.recalibrate")
    proc = _python(code, str(tiny_tflite), "--data", str(data), "--out", str(tmp_path / "site.tflite"))
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    assert status == {"exit": 0, "loaded": []}, proc.stderr
    assert "refitted (cross-fitted)" in proc.stdout and (tmp_path / "site.tflite").is_file()
