"""Score trained-and-converted runs of the shipped recipe on every test part and two unseen collections.

    python bench/recipe.py runs/default_s0 runs/default_s1      # bench/results/recipe.json

Each RUN is a `train` run folder made with --test-fraction, converted twice beside it:
`convert RUN --out RUN/int8.tflite` and `convert RUN --float32 --out RUN/float32.tflite`.
For each run, on the test part of every collection it trained on (scored once, never selected or
calibrated on) and on the benign/malignant set and PH2 less every copy of a training collection's
image: the Keras model and the int8 file (run as the edge runs it) are scored, both read through the
file's calibration (its temperature and threshold), so that their agreement measures int8's arithmetic
alone; and the two files timed, one thread, interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from results import save

from convert.fidelity import flag_agreement, measure_latency, shows_label
from convert.representative import collection_name
from edge.datasets import load_dataset, to_binary
from edge.model.classifier import Classifier, calibrated_probabilities
from training.config import TrainConfig
from training.evaluate import classification_metrics, malignancy_metrics, predict_logits, summary
from training.labels import SET_LABELS, allowed_classes, malignant_rows
from training.pipeline import cache_dir
from training.runfolder import RunFolder
from training.splits import leaks_into, load_images
from training.train import read_collections

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXTERNAL = {"benign_malignant": "malignant-vs-benign/train", "ph2": "ph2"}


def fidelity(keras_p: np.ndarray, int8_p: np.ndarray, contract, y: np.ndarray | None = None,
             int8_contract=None, bad: np.ndarray | None = None) -> dict:  # fmt: skip
    """Top-1 agreement on every image and on those Keras labels; balanced-accuracy points lost (with labels);
    the malignancy flag's agreement (both at the int8 file's threshold) and the malignancy AUC lost."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    same = keras_p.argmax(1) == int8_p.argmax(1)
    shown = shows_label(keras_p, contract)
    loss = None
    if y is not None:
        loss = 100 * (balanced_accuracy_score(y, keras_p.argmax(1)) - balanced_accuracy_score(y, int8_p.argmax(1)))
    out = {"n": int(len(same)), "top1_agreement": float(same.mean()), "labelled": int(shown.sum()),
           "label_agreement": float(same[shown].mean()), "balanced_accuracy_loss": loss}  # fmt: skip
    if int8_contract is not None:
        mal = list(contract.malignant_indices)
        keras_risk, int8_risk = keras_p[:, mal].sum(1), int8_p[:, mal].sum(1)
        out["flag_agreement"] = flag_agreement(keras_p, int8_p, contract, int8_contract.risk_threshold)  # as shipped
        if bad is not None and 0 < bad.sum() < len(bad):
            out["auc_lost"] = float(roc_auc_score(bad, keras_risk) - roc_auc_score(bad, int8_risk))
    return out


@dataclass
class ScoredSet:
    name: str
    images: np.ndarray
    y: np.ndarray | None  # class indices on a test part; None on a never-trained-on set
    bad: np.ndarray  # malignant or not
    paths: list[Path] | None = None  # the image files, as a camera would give them (before preprocessing)


def collection_names(config: TrainConfig) -> list[str]:
    """A short name for each collection of a run, in order: isic9, ham10000, isic2019 (and benign_malignant,
    ph2: the never-trained-on sets' names, for a run that trained on them)."""
    external = {str((DATA / rel).resolve()): name for name, rel in EXTERNAL.items()}
    return [external.get(str(Path(p).resolve()), collection_name(p)) for p in (config.data, *config.more_data)]


def scored_sets(run: Path, contract, part: str = "test") -> list[ScoredSet]:
    """Every collection's test part of ``run`` (one fixed split for every seed), then the unseen sets (those of
    EXTERNAL the run did not train on). A benign/malignant collection's test part is scored by malignancy.
    ``part="validation"``: the validation parts instead, and no unseen sets."""
    config = RunFolder(run).config()
    samples, labels, origins, _ = read_collections(config)
    if list(labels) != list(contract.labels):
        raise SystemExit(f"{run} and the model disagree on the classes: {labels} vs {list(contract.labels)}")
    by_path = {str(s.path.resolve()): s for s in samples}
    loaded = load_images([by_path[p] for p in RunFolder(run).split()[part]], contract)
    kinds = (*labels, *SET_LABELS)
    y = np.array([kinds.index(s.label) for s in loaded.samples])
    origin = np.array([origins[s.path] for s in loaded.samples])
    bad = malignant_rows(allowed_classes(kinds, contract)[y], contract)
    out = []
    paths = np.array([s.path for s in loaded.samples], dtype=object)
    names = collection_names(config)
    for c, name in enumerate(names):
        ours = origin == c
        classes = y[ours] if (y[ours] < len(labels)).all() else None  # None: benign/malignant labels
        out.append(ScoredSet(name, loaded.images[ours], classes, bad[ours], list(paths[ours])))
    unseen = [(name, rel) for name, rel in EXTERNAL.items() if name not in names and part == "test"]
    trained = load_images(samples, contract, cache=cache_dir()) if unseen else None  # train's own cache
    for name, rel in unseen:
        ext = load_images(list(load_dataset(DATA / rel).samples), contract)
        kept = np.nonzero(~leaks_into(ext, trained))[0]
        unseen_bad = np.array([to_binary(ext.samples[i].label) == "malignant" for i in kept])
        out.append(ScoredSet(name, ext.images[kept], None, unseen_bad, [ext.samples[i].path for i in kept]))
    return out


def validation_part(run: Path, contract) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, class indices, collection names) of every validation image of ``run`` labelled with one class
    (a benign/malignant collection's images, labelled with a group of classes, are left out)."""
    config = RunFolder(run).config()
    samples, labels, origins, _ = read_collections(config)
    by_path = {str(s.path.resolve()): s for s in samples}
    listed = [by_path[p] for p in RunFolder(run).split()["validation"]]
    loaded = load_images([s for s in listed if s.label in labels], contract)
    names = collection_names(config)
    y = np.array([labels.index(s.label) for s in loaded.samples])
    return loaded.images, y, np.array([names[origins[s.path]] for s in loaded.samples])


SPECIFICITIES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95)  # the flag's ROC, read at these


def roc_points(bad: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """The flag's whole ROC as a row: the best sensitivity reachable at each of SPECIFICITIES or more."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(bad, risk)
    return {f"{spec:.2f}": float(tpr[fpr <= 1 - spec + 1e-12].max()) for spec in SPECIFICITIES}


def scores(s: ScoredSet, probs: np.ndarray, contract) -> dict:
    risk = probs[:, list(contract.malignant_indices)].sum(1)
    if s.y is not None:
        out = summary(classification_metrics(s.y, probs, contract))
    else:
        out = malignancy_metrics(risk, s.bad, contract.risk_threshold)
    return out | {"sensitivity_at_specificity": roc_points(s.bad, risk)}


def rounded_to_grid(logits: np.ndarray, scale: float, zero: int) -> np.ndarray:
    """``logits`` as an int8 output tensor with ``scale`` and ``zero`` would carry them."""
    return (np.clip(np.round(logits / scale) + zero, -128, 127) - zero) * scale


def int8_probabilities(int8: Classifier, images: np.ndarray, views: int = 1) -> np.ndarray:
    """The file's calibrated probabilities; with ``views`` > 1 its logits averaged over the flipped views
    (what ``convert --views`` builds into a file, up to int8 rounding)."""
    from convert.views import flipped

    logits = [np.stack([int8.logits(np.ascontiguousarray(im)) for im in v]) for v in flipped(images, views)]
    return calibrated_probabilities(np.mean(logits, axis=0), int8.contract.temperature)


def score_run(run: Path, int8_name: str = "int8.tflite", float32_name: str = "float32.tflite", views: int = 1,
              ensemble: tuple[Path, ...] = (), zoom: float | None = None) -> dict:  # fmt: skip
    """The Keras model and its int8 file on every set, their agreement, and both files timed. A file built
    with ``convert --views N [--zoom F] [--ensemble RUN ...]`` is compared with the Keras models averaged over
    the same views."""
    import keras

    from convert.views import flipped

    contract = RunFolder(run).contract()
    int8 = Classifier(run / int8_name, threads=2)
    scale, zero = int8.model.output["quantization"]
    models = [keras.saving.load_model(RunFolder(r).model_file, compile=False) for r in (run, *ensemble)]
    out: dict = {"keras": {}, "int8": {}, "fidelity": {}, "views": views, "zoom": zoom, "file": int8_name,
                 "ensemble": [str(r) for r in ensemble]}  # fmt: skip
    sets = scored_sets(run, contract)
    for s in sets:
        logits = np.mean([predict_logits(m, v) for m in models for v in flipped(s.images, views, zoom)], axis=0)
        # both read through the file's calibration: the Keras models averaged over views have none of their own,
        # and one temperature for both leaves int8's arithmetic as the only difference
        keras_p = calibrated_probabilities(logits, int8.contract.temperature)
        int8_p = int8_probabilities(int8, s.images)
        out["keras"][s.name] = scores(s, keras_p, int8.contract)
        out["int8"][s.name] = scores(s, int8_p, int8.contract)
        out["fidelity"][s.name] = fidelity(keras_p, int8_p, int8.contract, s.y, int8.contract, s.bad)
        # the flag agreement left if the file computed these logits exactly and only rounded them to its output
        rounded = calibrated_probabilities(rounded_to_grid(logits, scale, zero), int8.contract.temperature)
        out["fidelity"][s.name]["flag_ceiling"] = flag_agreement(keras_p, rounded, int8.contract,
                                                                 int8.contract.risk_threshold)  # fmt: skip
    latency = measure_latency({"float32": run / float32_name, "int8": run / int8_name}, sets[0].images[0],
                              runs=200)  # fmt: skip
    out["latency"] = {
        "float32_ms": latency["float32"], "int8_ms": latency["int8"], "speedup": latency["float32"] / latency["int8"],
    }  # fmt: skip
    metrics = RunFolder(run).metrics()
    out["int8_mb"] = (run / int8_name).stat().st_size / 1e6
    out["train_minutes"] = metrics["train_seconds"] / 60
    out["train_minutes_each"] = [RunFolder(r).metrics()["train_seconds"] / 60 for r in (run, *ensemble)]
    out["seed"] = metrics["config"]["seed"]
    out["best_epoch"] = metrics["best_epoch"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--recipe", default="", help="the train and convert commands that made the runs")
    parser.add_argument("--name", default="recipe", help="the results file: bench/results/NAME.json")
    parser.add_argument("--int8", default="int8.tflite", help="the int8 file in each run folder")
    parser.add_argument("--float32", default="float32.tflite", help="the float32 file timed beside it")
    parser.add_argument("--views", type=int, default=1, help="the flipped views the files average (convert --views)")
    parser.add_argument("--zoom", type=float, default=None, help="the zoom the files average (convert --zoom)")
    parser.add_argument("--ensemble", type=Path, action="append", default=[],
                        help="a run the int8 file averages with RUN (convert --ensemble; one RUN only)")  # fmt: skip
    args = parser.parse_args()
    if args.ensemble and len(args.runs) != 1:
        parser.error("--ensemble scores one RUN")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [score_run(run, args.int8, args.float32, args.views, tuple(args.ensemble), args.zoom) for run in args.runs]
    print(json.dumps(runs, indent=1))
    command = "python bench/recipe.py " + " ".join(str(r) for r in args.runs) + f" --name {args.name}"
    if args.views != 1 or args.int8 != "int8.tflite":
        command += f" --int8 {args.int8} --float32 {args.float32} --views {args.views}"
    command += f" --zoom {args.zoom:g}" if args.zoom else ""
    command += "".join(f" --ensemble {r}" for r in args.ensemble)
    save(args.name, command, recipe=args.recipe, runs=runs)


if __name__ == "__main__":
    main()
