"""What the kiosk refuses, and how trustworthy what it keeps is: the colour gate, the lesion gate, abstaining.

    python bench/gates.py runs/isic8_s0 --model models/isic8_int8.tflite     # bench/results/gates.json

RUN is the `train` run the file was converted from (its test parts are scored; nothing here was fitted
or chosen on them). Every image goes through what the kiosk does with a photo: the quality gates (colour
included) on the guide box, then the file (its lesion gate included). Reported:

- refused: the share of each dermoscopy set (the run's test parts, benign/malignant and PH2 less copies
  of training images) that the colour gate and the lesion gate set aside, and the older quality gates;
- greyscale and 1-bit copies of every malignant test image: the share answered retake, "not a skin
  lesion", uncertain or flagged (anything but a confident benign reading), with and without the new gates;
  on the colour images, the flag's sensitivity (the gates do not change the risk, and every path still
  shows a raised flag) and the share of malignant and of benign images the new gates set aside;
- non-lesion photographs and made-up frames (bench/nonlesion.py): the share refused; and how well the file's
  features separate them, whatever its threshold: the share of them its lesion gate would refuse at the
  threshold that refuses at most 2, 3 or 5 % of each dermoscopy set (files compare at equal cost);
- selective prediction: malignancy AUC and the flag's sensitivity / specificity on the images kept when
  0, 5, 10 and 20 % are set aside by each rule (lowest top-1 confidence, smallest top-1 margin, largest
  lesion-gate distance, risk closest to the threshold). The rule kept is the one with the highest kept
  AUC averaged over the five sets and the 5, 10 and 20 % points (decided before the figures);
- the gates' cost per frame, one thread, timed in this run beside the model's invoke.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import cv2
import numpy as np
from nonlesion import non_lesion_images
from recipe import ScoredSet, scored_sets
from results import save

from edge.image.preprocess import load_image
from edge.image.quality import ISSUES, assess_quality, colour_spread, guide_box
from edge.model.classifier import Classifier
from edge.model.lesion_gate import threshold_for
from training.runfolder import RunFolder

FRACTIONS = (0.0, 0.05, 0.1, 0.2)
SEPARATION = (0.02, 0.03, 0.05)
COLOUR_ISSUE = ISSUES[4]


def answers(clf: Classifier, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
    """The kiosk's reading of each image: quality, then the file (with its lesion gate)."""
    rows = []
    for image in images:
        q = assess_quality(image, clf.contract.crop_fraction)
        p = clf.classify(image, quality=q)
        top = sorted(p.probabilities.values(), reverse=True)
        issues = q["issues"]
        rows.append((p.risk, p.flagged, p.uncertain, p.not_lesion, p.lesion_score, COLOUR_ISSUE in issues,
                     bool([i for i in issues if i != COLOUR_ISSUE]), top[0], top[0] - top[1]))  # fmt: skip
    names = ("risk", "flagged", "uncertain", "not_lesion", "lesion_score", "colourless", "other_retake",
             "confidence", "margin")  # fmt: skip
    cols = list(zip(*rows))
    return {n: np.array(c, dtype=float if n in ("risk", "lesion_score", "confidence", "margin") else bool)
            for n, c in zip(names, cols)}  # fmt: skip


def refused(a: dict[str, np.ndarray]) -> dict[str, float]:
    new = a["colourless"] | a["not_lesion"]
    return {"n": int(len(new)), "colour_gate": float(a["colourless"].mean()),
            "lesion_gate": float(a["not_lesion"].mean()), "new_gates": float(new.mean()),
            "older_quality_gates": float(a["other_retake"].mean())}  # fmt: skip


def not_confident_benign(a: dict[str, np.ndarray], new_gates: bool) -> float:
    """Share answered anything but a confident benign reading (retake, not a lesion, uncertain or flagged)."""
    out = a["other_retake"] | a["uncertain"] | a["flagged"]
    if new_gates:
        out = out | a["colourless"] | a["not_lesion"]
    return float(out.mean())


def selective(a: dict[str, np.ndarray], bad: np.ndarray, threshold: float) -> dict[str, dict]:
    """Kept-image malignancy AUC, sensitivity and specificity when each rule sets aside 0-20 %."""
    from sklearn.metrics import roc_auc_score

    logit = np.log(np.clip(a["risk"], 1e-6, 1 - 1e-6) / np.clip(1 - a["risk"], 1e-6, 1))
    doubt = {  # higher: set aside first
        "low confidence": -a["confidence"],
        "small margin": -a["margin"],
        "lesion gate": a["lesion_score"],
        "near the threshold": -np.abs(logit - np.log(threshold / (1 - threshold))),
    }
    out = {}
    for rule, d in doubt.items():
        order = np.argsort(-d, kind="stable")
        points = {}
        for f in FRACTIONS:
            kept = np.sort(order[int(round(f * len(order))) :])
            k_bad, k_flag = bad[kept], a["flagged"][kept]
            points[f"{f:.2f}"] = {
                "auc": float(roc_auc_score(k_bad, a["risk"][kept])) if 0 < k_bad.sum() < len(k_bad) else None,
                "sensitivity": float(k_flag[k_bad].mean()) if k_bad.any() else None,
                "specificity": float((~k_flag[~k_bad]).mean()) if (~k_bad).any() else None,
            }
        out[rule] = points
    return out


def gate_cost(clf: Classifier, image: np.ndarray, runs: int = 300) -> dict[str, float]:
    """Median ms a frame: the colour measure on the guide box, the model alone, the model + lesion gate."""
    from edge.image.preprocess import preprocess

    x = preprocess(image, clf.contract)
    box = guide_box(image, clf.contract.crop_fraction)
    times: dict[str, list[float]] = {"colour_gate": [], "invoke": [], "features_and_lesion_gate": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        colour_spread(box)
        t1 = time.perf_counter()
        clf.model(x)
        t2 = time.perf_counter()
        clf.gate.score(clf.model.features())
        t3 = time.perf_counter()
        times["colour_gate"].append(t1 - t0)
        times["invoke"].append(t2 - t1)
        times["features_and_lesion_gate"].append(t3 - t2)
    return {k: 1000 * float(np.median(v)) for k, v in times.items()}


def greyscale(image: np.ndarray, one_bit: bool = False) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if one_bit:
        grey = np.where(grey >= np.median(grey), 255, 0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="the int8 file converted from RUN")
    parser.add_argument("--name", default="gates", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    clf = Classifier(args.model, threads=1)
    if clf.gate is None:
        raise SystemExit(f"{args.model} has no lesion gate: convert it again")
    sets: list[ScoredSet] = scored_sets(args.run, RunFolder(args.run).contract())
    threshold = clf.contract.risk_threshold
    out: dict = {"model": str(args.model), "lesion_gate_threshold": clf.gate.threshold, "sets": {}}
    dermoscopy_scores = []
    for s in sets:
        logging.info("%s: %d images", s.name, len(s.images))
        raw = [load_image(path) for path in s.paths]  # as the camera gives them: the gates see raw pixels
        a = answers(clf, raw)
        dermoscopy_scores.append(a["lesion_score"])
        new_refusal = a["colourless"] | a["not_lesion"]
        kept_flag = a["flagged"] & ~new_refusal
        entry = {"refused": refused(a), "selective": selective(a, s.bad, threshold),
                 "colour_sensitivity": {"flag": float(a["flagged"][s.bad].mean()),
                                        "malignant_refused": float(new_refusal[s.bad].mean()),
                                        "benign_refused": float(new_refusal[~s.bad].mean()),
                                        "flag_and_not_refused": float(kept_flag[s.bad].mean())}}  # fmt: skip
        if s.y is not None:  # a test part: its malignant images in greyscale and 1-bit
            malignant = [im for im, bad in zip(raw, s.bad) if bad]
            for name, one_bit in (("greyscale", False), ("1-bit", True)):
                g = answers(clf, [greyscale(im, one_bit) for im in malignant])
                entry[name] = {"n": int(len(malignant)), "answered_before": not_confident_benign(g, False),
                               "answered": not_confident_benign(g, True),
                               "flagged": float(g["flagged"].mean())}  # fmt: skip
        out["sets"][s.name] = entry
    photos = non_lesion_images()
    a = answers(clf, [im for _, _, im in photos])
    kinds = np.array([k for k, _, _ in photos])
    out["non_lesion"] = {}
    for kind in (*dict.fromkeys(kinds), "all"):
        m = np.ones(len(kinds), bool) if kind == "all" else kinds == kind
        any_refusal = a["not_lesion"] | a["colourless"] | a["other_retake"]
        out["non_lesion"][kind] = {"n": int(m.sum()), "lesion_gate": float(a["not_lesion"][m].mean()),
                                   "colour_gate": float(a["colourless"][m].mean()),
                                   "refused": float(any_refusal[m].mean()),
                                   "passed": [name for (k, name, _im), r in zip(photos, any_refusal)
                                              if not r and kind in ("all", k)][:20]}  # fmt: skip
    scores = a["lesion_score"]
    out["separation"] = {}
    for share in SEPARATION:  # the threshold refusing at most `share` of each dermoscopy set, as convert sets it
        at = threshold_for([d[np.isfinite(d)] for d in dermoscopy_scores], share)
        out["separation"][f"{share:.2f}"] = {"threshold": at, **{kind: float((scores[kinds == kind] > at).mean())
                                             for kind in ("colour photo", "held-out photo")}}  # fmt: skip
    rules = next(iter(out["sets"].values()))["selective"]
    mean_auc = {r: float(np.mean([e["selective"][r][f]["auc"] for e in out["sets"].values() for f in ("0.05", "0.10",
                "0.20")])) for r in rules}  # fmt: skip
    out["abstain_rule_mean_auc"] = mean_auc
    out["abstain_rule_kept"] = max(mean_auc, key=mean_auc.get)
    out["cost_ms"] = gate_cost(clf, load_image(sets[0].paths[0]))
    command = f"python bench/gates.py {args.run} --model {args.model}"
    command += f" --name {args.name}" if args.name != "gates" else ""
    print(save(args.name, command, **out))


if __name__ == "__main__":
    main()
