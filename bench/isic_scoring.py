"""Our balanced accuracy and AUCs against the ISIC challenges' own scoring package, on one run.

    pip install -e ".[bench]"
    python bench/isic_scoring.py runs/isic8_s0 --model models/isic8_int8.tflite

The shipped int8 file's probabilities on every test part of the run (and the two collections it never
saw) are scored twice: by ``training.evaluate.classification_metrics`` (scikit-learn), as every figure
in docs/BENCHMARKS.md is, and by ``isic_challenge_scoring.ClassificationScore`` fed the challenge's own
CSV layout (one row an image, one column a class; truth one-hot). The malignancy AUC is scored by the
package as a two-class task (malignant, benign) with the summed probability of the malignant classes.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import numpy as np
from recipe import int8_probabilities, scored_sets
from results import save

from edge.model.classifier import Classifier
from training.evaluate import classification_metrics


def _csv(columns: list[str], values: np.ndarray) -> io.StringIO:
    rows = ["image," + ",".join(columns)]
    rows += [f"ISIC_{i:07d}," + ",".join(f"{v:.9f}" for v in row) for i, row in enumerate(values)]
    return io.StringIO("\n".join(rows) + "\n")


def isic_scores(truth: np.ndarray, probs: np.ndarray, columns: list[str]) -> tuple[float, float, dict[str, float]]:
    """(balanced accuracy, macro AUC, AUC per class) as the challenge computes them; ``truth`` one-hot.

    The CSVs are read by the package's own parsers and scored by its own metric functions. Its
    ``ClassificationScore`` cannot score a part that lacks a class (its partial-AUC step fails), so the
    AUCs are taken over the classes present, as ours are; its balanced accuracy skips absent classes
    by itself (their 0/0 recall is NaN, left out of the mean).
    """
    from isic_challenge_scoring import metrics
    from isic_challenge_scoring.load_csv import parse_csv, parse_truth_csv, sort_rows, validate_rows

    truth_p, weights = parse_truth_csv(_csv(columns, truth))
    pred_p = parse_csv(_csv(columns, probs), truth_p.columns)
    validate_rows(truth_p, pred_p)
    sort_rows(truth_p)
    sort_rows(pred_p)
    balanced = metrics.balanced_multiclass_accuracy(truth_p, pred_p, weights.score_weight)
    present = [c for c in columns if truth_p[c].gt(0.5).any() and not truth_p[c].gt(0.5).all()]
    per_class = {c: float(metrics.auc(truth_p[c], pred_p[c], weights.score_weight)) for c in present}
    return float(balanced), float(np.mean(list(per_class.values()))), per_class


def compare(run: Path, model: Path) -> list[dict]:
    int8 = Classifier(model, threads=2)
    contract = int8.contract
    labels, mal = list(contract.labels), list(contract.malignant_indices)
    out = []
    for s in scored_sets(run, contract):
        probs = int8_probabilities(int8, s.images)
        risk = probs[:, mal].sum(1)
        row: dict = {"set": s.name, "n": len(probs)}
        if s.y is not None:
            ours = classification_metrics(s.y, probs, contract)
            present = sorted(set(s.y.tolist()))
            bal, macro, per_class = isic_scores(np.eye(len(labels))[s.y], probs, labels)
            row |= {"balanced_accuracy": [ours["balanced_accuracy"], bal],
                    "macro_auc": [ours.get("macro_auc"), macro],
                    "classes_present": len(present), "classes": len(labels),
                    "per_class_auc_isic": per_class}  # fmt: skip
            bad = np.isin(s.y, mal)
        else:
            bad = s.bad
        from sklearn.metrics import roc_auc_score

        two = np.stack([bad, ~bad], 1).astype(float)
        _, _, per_class = isic_scores(two, np.stack([risk, 1 - risk], 1), ["malignant", "benign"])
        row["malignant_auc"] = [float(roc_auc_score(bad, risk)), per_class["malignant"]]
        out.append(row)
    return out


def _fmt(pair: list) -> str:
    ours, theirs = pair
    if ours is None:
        return f"- / {theirs:.4f}"
    return f"{ours:.4f} / {theirs:.4f}" if np.isfinite(theirs) else f"{ours:.4f} / undefined"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", type=Path, default=Path("models/isic8_int8.tflite"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sets = compare(args.run, args.model)
    print(json.dumps(sets, indent=1))
    rows = []
    for r in sets:
        bal = _fmt(r["balanced_accuracy"]) if "balanced_accuracy" in r else "-"
        macro = _fmt(r["macro_auc"]) if "macro_auc" in r else "-"
        present = f"{r['classes_present']} of {r['classes']}" if "classes" in r else "2 (benign, malignant)"
        rows.append({"set": r["set"], "n": r["n"], "classes present": present, "balanced accuracy": bal,
                     "macro AUC": macro, "malignancy AUC": _fmt(r["malignant_auc"])})  # fmt: skip
    command = f"python bench/isic_scoring.py {args.run} --model {args.model}"
    save("isic_scoring", command, rows=rows, sets=sets)


if __name__ == "__main__":
    main()
