"""Score trained-and-converted runs of the shipped recipe on every test part and two unseen collections.

    python bench/recipe.py runs/default_s0 runs/default_s1      # bench/results/recipe.json

Each RUN is a `train` run folder made with --test-fraction, converted twice beside it:
`convert RUN --out RUN/int8.tflite` and `convert RUN --float32 --out RUN/float32.tflite`.
For each run, on the test part of every collection it trained on (scored once, never selected or
calibrated on) and on the benign/malignant set and PH2 less every copy of a training collection's
image: the Keras model and the int8 file (run as the edge runs it, with its own temperature and
threshold) are scored, their top-1 agreement compared, and the two files timed, one thread,
interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from results import save

from convert.fidelity import measure_latency
from edge.model.classifier import Classifier, calibrated_probabilities
from edge.model.contract import load_contract
from training.datasets import load_dataset, to_binary
from training.evaluate import classification_metrics, predict_logits
from training.pipeline import cache_dir
from training.splits import leaks_into, load_images
from training.train import TrainConfig, _read_collections, _summary

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FIELDS = TrainConfig.__dataclass_fields__  # a run made before an option was removed still reads
EXTERNAL = {"benign_malignant": "malignant-vs-benign/train", "ph2": "ph2"}


def binary_scores(risk: np.ndarray, bad: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    return {
        "n": int(len(bad)),
        "malignant_auc": float(roc_auc_score(bad, risk)),
        "malignant_sensitivity": float((risk[bad] >= threshold).mean()),
        "malignant_specificity": float((risk[~bad] < threshold).mean()),
    }


def fidelity(keras_p: np.ndarray, int8_p: np.ndarray, contract, y: np.ndarray | None = None) -> dict:
    """Top-1 agreement on every image and on those Keras labels; balanced-accuracy points lost (with labels)."""
    from sklearn.metrics import balanced_accuracy_score

    same = keras_p.argmax(1) == int8_p.argmax(1)
    top2 = np.sort(keras_p, axis=1)[:, -2:]
    shown = (top2[:, 1] >= contract.uncertain_below) & (top2[:, 1] - top2[:, 0] >= contract.uncertain_margin)
    loss = None
    if y is not None:
        loss = 100 * (balanced_accuracy_score(y, keras_p.argmax(1)) - balanced_accuracy_score(y, int8_p.argmax(1)))
    return {"n": int(len(same)), "top1_agreement": float(same.mean()), "labelled": int(shown.sum()),
            "label_agreement": float(same[shown].mean()), "balanced_accuracy_loss": loss}  # fmt: skip


def score_run(run: Path) -> dict:
    import keras

    metrics = json.loads((run / "metrics.json").read_text())
    config = TrainConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in metrics["config"].items() if k in FIELDS}
    )
    samples, labels, origins, _ = _read_collections(config)
    by_path = {str(s.path.resolve()): s for s in samples}
    test = [by_path[p] for p in json.loads((run / "split.json").read_text())["test"]]
    contract = load_contract(run / "contract.json")
    int8 = Classifier(run / "int8.tflite", threads=2)
    model = keras.saving.load_model(run / "model.keras", compile=False)
    loaded = load_images(test, contract)
    y = np.array([labels.index(s.label) for s in loaded.samples])
    origin = np.array([origins[s.path] for s in loaded.samples])
    keras_p = calibrated_probabilities(predict_logits(model, loaded.images), contract.temperature)
    int8_p = calibrated_probabilities(np.stack([int8.logits(im) for im in loaded.images]), int8.contract.temperature)
    out: dict = {"keras": {}, "int8": {}, "fidelity": {}}
    collections = [config.data, *config.more_data]
    for c, path in enumerate(collections):
        name = Path(path).name if Path(path).name != "train" else Path(path).parent.name
        here = origin == c
        out["keras"][name] = _summary(classification_metrics(y[here], keras_p[here], contract))
        out["int8"][name] = _summary(classification_metrics(y[here], int8_p[here], int8.contract))
        out["fidelity"][name] = fidelity(keras_p[here], int8_p[here], contract, y[here])
    trained = load_images(samples, contract, cache=cache_dir())  # train's own cache
    mal = list(contract.malignant_indices)
    for name, rel in EXTERNAL.items():
        ext = load_images(list(load_dataset(DATA / rel).samples), contract)
        kept = np.nonzero(~leaks_into(ext, trained))[0]
        images = ext.images[kept]
        bad = np.array([to_binary(ext.samples[i].label) == "malignant" for i in kept])
        kp = calibrated_probabilities(predict_logits(model, images), contract.temperature)
        ip = calibrated_probabilities(np.stack([int8.logits(im) for im in images]), int8.contract.temperature)
        out["keras"][name] = binary_scores(kp[:, mal].sum(1), bad, contract.risk_threshold)
        out["int8"][name] = binary_scores(ip[:, mal].sum(1), bad, int8.contract.risk_threshold)
        out["fidelity"][name] = fidelity(kp, ip, contract)
    image = loaded.images[:1][0]
    latency = measure_latency({"float32": run / "float32.tflite", "int8": run / "int8.tflite"}, image, runs=200)
    out["latency"] = {
        "float32_ms": latency["float32"], "int8_ms": latency["int8"], "speedup": latency["float32"] / latency["int8"],
    }  # fmt: skip
    out["int8_mb"] = (run / "int8.tflite").stat().st_size / 1e6
    out["train_minutes"] = metrics["train_seconds"] / 60
    out["seed"] = config.seed
    out["best_epoch"] = metrics["best_epoch"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--recipe", default="", help="the train and convert commands that made the runs")
    parser.add_argument("--name", default="recipe", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [score_run(run) for run in args.runs]
    print(json.dumps(runs, indent=1))
    command = "python bench/recipe.py " + " ".join(str(r) for r in args.runs) + f" --name {args.name}"
    save(args.name, command, recipe=args.recipe, runs=runs)


if __name__ == "__main__":
    main()
