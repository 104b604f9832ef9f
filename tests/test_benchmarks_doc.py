"""docs/BENCHMARKS.md is what bench/report.py makes of bench/results/: never edited by hand, never stale."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402


def test_benchmarks_doc_is_the_report_of_the_results_files():
    assert (ROOT / "docs" / "BENCHMARKS.md").read_text() == report.render(), "run: python bench/report.py"


def test_every_results_file_has_a_section_or_is_cited_by_what_we_tried():
    named = {name for name, *_ in report.SECTIONS}
    tried = (ROOT / "bench" / "results" / "tried.json").read_text()
    for path in (ROOT / "bench" / "results").glob("*.json"):
        command = json.loads(path.read_text())["command"]
        assert path.stem in named or command in tried, f"{path.name} is reported nowhere"
