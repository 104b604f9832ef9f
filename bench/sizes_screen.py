"""Which models, input sizes and views to average in one file within the edge budget: a screen on validation.

    python bench/sizes_screen.py --large runs/all224_s0 runs/all224_s1 runs/all224_s2 \\
        --small runs/all_s0 runs/all_s1 runs/all_s2            # bench/results/sizes_screen.json

The Keras models' logits on every validation part of the runs' one split (a 224 px run and the 128 px run it
grew from share it), each flipped view apart; every combination of models and views is averaged as
``convert --views N --ensemble`` averages inside a file (the layers after the pooling are linear, so this is
the file's answer up to int8 rounding; the 128 px models see the 224 px image through the file's own bilinear
shrink) and scored by the five-set mean malignancy AUC. Its classify step is estimated from one run of
bench/edge_bench.py (about 2 ms of frame path, 0.72 ms a 128 px view, 2.9 ms a 224 px view, one thread);
combinations over the budget's 10 ms, less a margin, are left out. The best on validation is the one to
convert and judge on the test parts by the paired rule; nothing here reads a test part.
"""

from __future__ import annotations

import argparse
import itertools
import logging
from pathlib import Path

import numpy as np
from recipe import scored_sets
from results import save
from sklearn.metrics import roc_auc_score

from convert.views import at_size, flipped
from edge.model.classifier import calibrated_probabilities
from training.evaluate import predict_logits
from training.runfolder import RunFolder

log = logging.getLogger(__name__)

FRAME_MS, VIEW_MS = 2.0, {128: 0.72, 224: 2.9}  # bench/edge_bench.py, this machine, one thread
BUDGET_MS = 9.5  # the 10 ms budget less the measurement's spread


def main() -> None:
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", nargs="+", type=Path, required=True, help="224 px runs")
    parser.add_argument("--small", nargs="+", type=Path, required=True, help="128 px runs (same split)")
    parser.add_argument("--name", default="sizes_screen", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    contract = RunFolder(args.large[0]).contract()
    sets = scored_sets(args.large[0], contract, part="validation")
    logits: dict[tuple[str, int], list[np.ndarray]] = {}  # (run, view) -> logits per set
    for run in (*args.large, *args.small):
        model = keras.saving.load_model(RunFolder(run).model_file, compile=False)
        size = int(model.input_shape[1])
        views = 2 if size == contract.image_size else 4
        for s in sets:
            for v, images in enumerate(flipped(at_size(s.images, size), views)):
                logits.setdefault((str(run), v), []).append(predict_logits(model, images))
        log.info("%s: %d views on %d validation images", run, views, sum(len(s.images) for s in sets))

    def score(members: list[tuple[str, int]]) -> float:
        aucs = []
        for i, s in enumerate(sets):
            mean = np.mean([logits[m][i] for m in members], axis=0)
            p = calibrated_probabilities(mean, contract.temperature)
            aucs.append(roc_auc_score(s.bad, p[:, list(contract.malignant_indices)].sum(1)))
        return float(np.mean(aucs))

    rows = []
    subsets = lambda runs: [c for k in range(len(runs) + 1) for c in itertools.combinations(runs, k)]  # noqa: E731
    for large in subsets(args.large):
        for small in subsets(args.small):
            for wl, ws in itertools.product((1, 2), (1, 2, 4)):
                if (not large and wl == 2) or (not small and ws != 1) or not (large or small):
                    continue
                ms = FRAME_MS + len(large) * wl * VIEW_MS[224] + len(small) * ws * VIEW_MS[128]
                if ms > BUDGET_MS:
                    continue
                members = [(str(r), v) for r in large for v in range(wl)]
                members += [(str(r), v) for r in small for v in range(ws)]
                rows.append({"large": [str(r) for r in large], "large_views": wl if large else 0,
                             "small": [str(r) for r in small], "small_views": ws if small else 0,
                             "classify_ms_estimate": round(ms, 2),
                             "validation_auc": round(score(members), 4)})  # fmt: skip
    rows.sort(key=lambda r: -r["validation_auc"])
    for r in rows[:12]:
        log.info("%s", r)
    command = ("python bench/sizes_screen.py --large " + " ".join(map(str, args.large)) + " --small "
               + " ".join(map(str, args.small)))  # fmt: skip
    save(args.name, command, sets=[s.name for s in sets], rows=rows)


if __name__ == "__main__":
    main()
