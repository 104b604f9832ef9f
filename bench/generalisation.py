"""Which backbone, input size and training collections carry over to collections never seen?

    python bench/generalisation.py            # ~30 min on 2 cores; bench/results/generalisation.json

A screen, cheap enough for a CPU: every (backbone, size) turns every image into ImageNet features once
(the frozen backbone, as `train`'s head phase sees it), and a class-weighted logistic-regression head
is fitted for each training-data condition. Fine-tuning lifts every cell; the screen ranks the levers.

The protocol is `train`'s, fixed before any number was looked at:
- isic9, HAM10000 and ISIC 2019 are read together and mapped to ISIC 2019's eight classes; copies and
  lesions are grouped across collections (ISIC id, lesion id, bytes, thumbnails), and each collection
  gets a lesion-grouped test part (20 %) and validation part (20 %), the same for every cell (the
  split is made once, at 96 px, and matched by path).
- A condition trains on the training part of its collections only; temperature and the 90 %-sensitivity
  malignancy threshold come from the validation part of those collections; test parts are scored once.
- Never trained on: the benign/malignant set and PH2, less every image that copies or shares a lesion
  with any image of the three collections.
- The rule: the highest mean malignancy AUC over the five test sets (three test parts, two external
  sets) wins; within 0.005, the higher mean balanced accuracy over the three test parts, then the
  cheaper model. The full recipe must also fit 150 minutes on this 2-core machine.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
from results import save  # bench/results.py

from edge.datasets import ISIC2019_CLASSES, load_dataset, to_binary
from edge.model.calibration import fit_temperature, risk_threshold_for_sensitivity
from edge.model.classifier import calibrated_probabilities
from edge.model.contract import MALIGNANT_DIAGNOSES, ModelContract
from training.evaluate import classification_metrics, summary
from training.pipeline import cache_dir
from training.splits import duplicate_groups, leaks_into, load_images
from training.train import TrainConfig, read_collections, split_parts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
COLLECTIONS = {"isic9": "isic9/train", "ham10000": "ham10000", "isic2019": "isic2019"}
EXTERNAL = {"benign_malignant": "malignant-vs-benign/train", "ph2": "ph2"}
CONDITIONS = {"isic9": ("isic9",), "+ham10000": ("isic9", "ham10000"), "+isic2019": tuple(COLLECTIONS)}


def contract_for(size: int, labels: tuple[str, ...]) -> ModelContract:
    malignant = tuple(name for name in labels if name.lower() in MALIGNANT_DIAGNOSES)
    return ModelContract(task="classify", labels=labels, arch="-", image_size=size, malignant_labels=malignant)


def features(arch: str, size: int, rows, batch: int = 64) -> np.ndarray:
    """The frozen ImageNet backbone's pooled features, float32 (N, C)."""
    import keras

    from training.evaluate import predict_logits
    from training.model import ARCHS, resolve_weights

    keras.backend.clear_session()
    backbone = ARCHS[arch](
        input_shape=(size, size, 3), include_top=False, pooling="avg",
        weights=resolve_weights("imagenet", arch), include_preprocessing=True,
    )  # fmt: skip
    return predict_logits(backbone, rows, batch).astype(np.float32)


def probe(f_tr, y_tr, n_classes: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", max_iter=400))
    head.fit(f_tr, y_tr)
    assert len(head.classes_) == n_classes, "a class is missing from the training part"
    return head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=["small", "large-minimalistic"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[96, 128, 224])
    parser.add_argument("--features", type=Path, default=Path("build/features"), help="where features are kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from sklearn.metrics import roc_auc_score

    paths = {name: str(DATA / rel) for name, rel in COLLECTIONS.items()}
    config = TrainConfig(data=paths["isic9"], more_data=(paths["ham10000"], paths["isic2019"]), out="-",
                         val_fraction=0.2, test_fraction=0.2)  # fmt: skip
    samples, labels, origins, _ = read_collections(config)
    assert labels == ISIC2019_CLASSES, labels
    first = load_images(samples, contract_for(96, labels), cache=cache_dir())
    y = np.array([labels.index(s.label) for s in first.samples])
    origin = np.array([origins[s.path] for s in first.samples])
    train, val, test = split_parts(y, origin, duplicate_groups(first), config)
    part_of = {s.path: p for p, idx in (("train", train), ("val", val), ("test", test)) for s in
               (first.samples[i] for i in idx)}  # fmt: skip
    external = {}
    for name, rel in EXTERNAL.items():
        ext = load_images(list(load_dataset(DATA / rel).samples), contract_for(96, labels), cache=cache_dir())
        keep = ~leaks_into(ext, first)
        external[name] = ([s for s, k in zip(ext.samples, keep) if k], int((~keep).sum()))
        logging.info("%s: %d images kept, %d left out as copies of training collections", name, keep.sum(),
                     (~keep).sum())  # fmt: skip

    results = []
    for size in args.sizes:
        contract = contract_for(size, labels)
        loaded = load_images(samples, contract, cache=cache_dir())
        assert [s.path for s in loaded.samples] == [s.path for s in first.samples]
        parts = {p: np.array([part_of[s.path] == p for s in loaded.samples]) for p in ("train", "val", "test")}
        ext_loaded = {name: load_images(kept, contract) for name, (kept, _) in external.items()}
        for arch in args.archs:
            store = args.features / f"{arch}_{size}.npy"  # the collections' features; the unseen sets' are cheap
            if store.is_file():
                f_all = np.load(store)
            else:
                t0 = time.time()
                f_all = features(arch, size, loaded.images)
                logging.info("%s %d px: features of %d images in %.0f s", arch, size, len(f_all), time.time() - t0)
                store.parent.mkdir(parents=True, exist_ok=True)
                np.save(store, f_all)
            f_ext = {name: features(arch, size, e.images) for name, e in ext_loaded.items()}
            for condition, names in CONDITIONS.items():
                inside = np.isin(origin, [list(COLLECTIONS).index(n) for n in names])
                tr, va = parts["train"] & inside, parts["val"] & inside
                head = probe(f_all[tr], y[tr], len(labels))
                temperature = fit_temperature(head.decision_function(f_all[va]), y[va])

                def probs(f, head=head, temperature=temperature):
                    return calibrated_probabilities(head.decision_function(f), temperature)

                mal = list(contract.malignant_indices)
                threshold = risk_threshold_for_sensitivity(probs(f_all[va])[:, mal].sum(1), np.isin(y[va], mal))
                scored = contract.replace(risk_threshold=threshold)
                row = {"arch": arch, "size": size, "condition": condition, "n_train": int(tr.sum()), "test": {}}
                for c, name in enumerate(COLLECTIONS):
                    te = parts["test"] & (origin == c)
                    row["test"][name] = summary(classification_metrics(y[te], probs(f_all[te]), scored))
                for name, e in ext_loaded.items():
                    bad = np.array([to_binary(s.label) == "malignant" for s in e.samples])
                    risk = probs(f_ext[name])[:, mal].sum(1)
                    row["test"][name] = {
                        "n": int(len(bad)), "malignant_auc": float(roc_auc_score(bad, risk)),
                        "malignant_sensitivity": float((risk[bad] >= threshold).mean()),
                        "malignant_specificity": float((risk[~bad] < threshold).mean()),
                    }  # fmt: skip
                aucs = [m["malignant_auc"] for m in row["test"].values()]
                row["mean_malignant_auc"] = float(np.mean(aucs))
                accuracies = [row["test"][n]["balanced_accuracy"] for n in COLLECTIONS]
                row["mean_balanced_accuracy"] = float(np.mean(accuracies))
                logging.info("%-18s %3d px %-10s mean malignancy AUC %.3f, balanced accuracy %.3f  %s",
                             arch, size, condition, row["mean_malignant_auc"], row["mean_balanced_accuracy"],
                             " ".join(f"{a:.3f}" for a in aucs))  # fmt: skip
                results.append(row)
    save("generalisation", "python bench/generalisation.py",
         split={"train": int(len(train)), "validation": int(len(val)), "test": int(len(test))},
         external_left_out={n: e[1] for n, e in external.items()}, rows=results)  # fmt: skip


if __name__ == "__main__":
    main()
