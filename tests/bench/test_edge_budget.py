"""The edge budget in the edge benchmark: the classify step within 10 ms a frame, the model files within 12 MB."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from edge_bench import BUDGET_MB, BUDGET_MS, budget_rows  # noqa: E402


def test_the_budget_rows_say_whether_each_figure_is_within_its_budget(tmp_path):
    small, large = tmp_path / "a.tflite", tmp_path / "b.tflite"
    small.write_bytes(b"\0" * 1_000_000)
    large.write_bytes(b"\0" * 12_000_000)
    (step, files) = budget_rows(3.2, [small])
    assert step[1] == "3.20 ms" and step[2] == f"<= {BUDGET_MS:g} ms" and step[3]
    assert files[1] == "1.00 MB" and files[2] == f"<= {BUDGET_MB:g} MB" and files[3] and "a.tflite" in files[0]
    over_time, over_size = budget_rows(10.5, [small, large])
    assert not over_time[3] and not over_size[3] and over_size[1] == "13.00 MB"
