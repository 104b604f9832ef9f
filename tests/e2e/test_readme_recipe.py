"""The README's train and convert commands, as written, on three small synthetic collections.

The lines of the README's recipe block are run with the collections' paths (``../shared/data/...``),
``runs/`` and ``models/`` pointed into a temporary folder; every other word stays as the README has it.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.conftest import ROOT, make_folder_dataset
from tests.conftest import run_command as _run

pytestmark = [pytest.mark.slow, pytest.mark.training]
pytest.importorskip("tensorflow")

LARGE_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v3_large_minimalistic_224_imagenet_no_top.weights.h5"


def readme_recipe() -> list[list[str]]:
    """The commands between the README's ``<!-- recipe -->`` and ``<!-- /recipe -->`` markers."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- recipe -->(.*?)<!-- /recipe -->", text, re.S)
    assert block, "README.md has no recipe block"
    lines = [line.split("#")[0].strip() for line in block.group(1).replace("\\\n", " ").splitlines()]
    return [shlex.split(line) for line in lines if line.startswith(("train ", "convert "))]


def test_readme_names_the_recipe_train_then_convert():
    commands = readme_recipe()
    assert [c[0] for c in commands[:-1]] == ["train"] * (len(commands) - 1) and commands[-1][0] == "convert"
    assert any(word.startswith("../shared/data/") for word in commands[0])


@pytest.mark.skipif(not LARGE_WEIGHTS.is_file(), reason=f"needs the offline ImageNet weights at {LARGE_WEIGHTS}")
def test_readme_train_and_convert_succeed_as_written(tmp_path):
    classes = ("melanoma", "nevus", "basal cell carcinoma")
    collections: dict[str, str] = {}

    def point(word: str) -> str:
        if word.startswith("../shared/data/"):
            if word not in collections:
                folder = tmp_path / "data" / str(len(collections))
                make_folder_dataset(folder, classes=classes, per_class=16, seed=len(collections))
                collections[word] = str(folder)
            return collections[word]
        if word.startswith(("runs/", "models/")):
            (tmp_path / word).parent.mkdir(parents=True, exist_ok=True)
            return str(tmp_path / word)
        return word

    *trains, convert = ([point(word) for word in command] for command in readme_recipe())
    for train in trains:
        _run(*train)  # exit status 0, or the test fails with the command's stderr
    _run(*convert)
    out = convert[convert.index("--out") + 1]
    report = json.loads((tmp_path / out).with_suffix(".fidelity.json").read_text())
    assert report["label_agreement"] >= 0.97  # the default gate, which the exit status already says
