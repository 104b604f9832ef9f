"""How well does a model do on another collection than the one it was trained on?

    python bench/external_validation.py models/isic8_int8.tflite ../shared/data/ham10000 \\
        --trained-on ../shared/data/isic9/train

A validation split drawn from the training collection shares its cameras, lighting, clinics and
case mix. Here the model (a .tflite file run as the edge runs it, or a run folder's Keras model)
classifies a dataset from elsewhere, after leaving out every image that copies an image of the
collections the model learnt from (``--trained-on``, repeatable: ISIC image id, lesion id,
identical bytes or a near-identical thumbnail, as the training split does). Prints, as JSON, the
malignancy flag at the model's own threshold (sensitivity, specificity, AUC of the risk, and the
share flagged per diagnosis) and, where the data's diagnoses map onto the model's classes,
accuracy, balanced accuracy over the classes present, AUCs, ECE and per-class recall.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.datasets import load_dataset, map_label, map_labels, to_binary
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import load_contract
from training.evaluate import classification_metrics, logits_function
from training.splits import leaks_into, load_images

REPORTED = ("n", "accuracy", "balanced_accuracy", "macro_auc", "malignant_auc", "ece")


def main() -> None:
    from sklearn.metrics import roc_auc_score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .tflite file (run as the edge runs it) or a run folder")
    parser.add_argument("data", help="a dataset from another collection (any layout train reads)")
    parser.add_argument("--trained-on", action="append", default=[], help="a collection the model learnt from")
    parser.add_argument(
        "--link-kept", type=Path, help="make DIR/<diagnosis>/ symbolic links to the images kept (for `recalibrate`)"
    )
    args = parser.parse_args()
    contract = load_contract(args.model)
    binary_model = set(contract.labels) == {"benign", "malignant"}
    task = "binary" if binary_model else "multiclass"
    external = load_images(list(load_dataset(args.data).samples), contract)
    left_out = np.zeros(len(external.samples), dtype=bool)
    for seen in args.trained_on:
        trained = load_images(map_labels(list(load_dataset(seen, "auto", task).samples), contract.labels), contract)
        left_out |= leaks_into(external, trained)
    keep = np.nonzero(~left_out)[0]
    for i in keep if args.link_kept else ():
        sample = external.samples[i]
        link = args.link_kept / sample.label / sample.path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(sample.path.resolve())
    diagnosis = np.array([external.samples[i].label for i in keep])
    malignant = np.array([to_binary(d) == "malignant" for d in diagnosis])
    probs = calibrated_probabilities(logits_function(args.model)(external.images[keep]), contract.temperature)
    risk = probs[:, list(contract.malignant_indices)].sum(1)
    flagged = risk >= contract.risk_threshold
    report = {
        "model": str(args.model),
        "data": args.data,
        "images": len(external.samples),
        "left_out_as_copies_of_training_collections": int(left_out.sum()),
        "n": len(keep),
        "risk_threshold": contract.risk_threshold,
        "malignant_auc": round(float(roc_auc_score(malignant, risk)), 4),
        "malignant_sensitivity": round(float(flagged[malignant].mean()), 4),
        "malignant_specificity": round(float(1 - flagged[~malignant].mean()), 4),
        "flagged_by_diagnosis": {d: round(float(flagged[diagnosis == d].mean()), 3) for d in sorted(set(diagnosis))},
        "n_by_diagnosis": {d: int((diagnosis == d).sum()) for d in sorted(set(diagnosis))},
    }
    # the model's own classes, where the data's diagnoses map onto them
    mapped = [map_label(to_binary(d) if binary_model else d, contract.labels) for d in diagnosis]
    if all(mapped):
        y = np.array([contract.labels.index(name) for name in mapped])
        m = classification_metrics(y, probs, contract)
        report |= {k: round(m[k], 4) for k in REPORTED if m.get(k) is not None}
        report["recall"] = {name: round(c["recall"], 3) for name, c in m["per_class"].items() if c["support"]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
