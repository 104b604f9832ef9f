"""`train --task segment` refuses what it cannot do in one sentence (exit 2 usage, exit 1 data)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from training.cli import main


@pytest.mark.parametrize(
    "args, option",
    [(["--img-size", "100"], "--img-size"), (["--img-size", "32"], "--img-size"), (["--arch", "large"], "--arch")],
)
def test_bad_options_are_usage_errors(tmp_path, args, option):
    result = CliRunner().invoke(main, [str(tmp_path), "--task", "segment", *args])
    assert result.exit_code == 2 and f"Invalid value for {option}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.training
def test_missing_or_maskless_data_is_one_sentence(tmp_path):
    pytest.importorskip("tensorflow")
    result = CliRunner().invoke(main, [str(tmp_path / "nope"), "--task", "segment", "--img-size", "64"])
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"x")
    args = [str(tmp_path), "--task", "segment", "--img-size", "64", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "no image with a mask" in result.output


def test_hold_out_is_for_segmenters(tmp_path):
    result = CliRunner().invoke(main, [str(tmp_path), "--hold-out", str(tmp_path)])
    assert result.exit_code == 2 and "--hold-out applies to --task segment" in result.output
