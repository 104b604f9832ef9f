"""Pick and preprocess the images `convert` needs: a representative set and a validation set.

Both go through the same ``edge.image.preprocess.preprocess`` as training and the edge runner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.datasets import DatasetError, Sample, load_dataset, map_labels
from edge.model.contract import ModelContract
from training.runfolder import RunFolder
from training.splits import duplicate_groups, load_images, split_indices

__all__ = [
    "ConvertData",
    "RepresentativeError",
    "collection_name",
    "collection_names",
    "load_convert_data",
    "more_collections",
    "recorded_data",
    "stratified_pick",
]

log = logging.getLogger(__name__)


class RepresentativeError(ValueError):
    """The data given to `convert` cannot serve as a representative or validation set."""


@dataclass
class ConvertData:
    representative: np.ndarray  # (R, S, S, 3) uint8, never validation images
    validation: np.ndarray  # (V, S, S, 3) uint8
    validation_labels: np.ndarray  # (V,) int indices into contract.labels
    source: str
    training: np.ndarray | None = None  # (T, S, S, 3) uint8, the whole training side (for QAT)
    threshold_on: np.ndarray | None = None  # (V,) bool: the validation images the threshold is set on
    gate: np.ndarray | None = None  # (G, S, S, 3) uint8 from the training side: the lesion gate is fitted on it
    validation_collection: np.ndarray | None = None  # (V,) int: which of the run's collections each came from


def stratified_pick(labels: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Up to ``count`` indices with every class represented in proportion (at least one each)."""
    rng = np.random.default_rng(seed)
    if count >= len(labels):
        return rng.permutation(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.maximum(1, np.floor(counts / counts.sum() * count).astype(int))
    picks = [
        rng.choice(np.nonzero(labels == c)[0], min(q, n), replace=False) for c, q, n in zip(classes, quota, counts)
    ]
    chosen = np.concatenate(picks)[:count]
    rest = np.setdiff1d(np.arange(len(labels)), chosen)
    top_up = rng.choice(rest, count - len(chosen), replace=False) if len(chosen) < count else []
    return rng.permutation(np.concatenate([chosen, top_up]).astype(int))


def _labels_of(samples: list[Sample], contract: ModelContract, source: str) -> np.ndarray:
    names = {s.label for s in samples}
    foreign = sorted(names - set(contract.labels))
    if foreign:
        raise RepresentativeError(
            f"{source} has labels {foreign} that the model does not know (model labels: {list(contract.labels)})"
        )
    return np.array([contract.labels.index(s.label) for s in samples])


def load_convert_data(
    data: str | Path,
    contract: ModelContract,
    run_dir: Path | None,
    samples: int,
    seed: int = 0,
    task: str = "auto",
    with_training: bool = False,
    threshold_on: tuple[str | Path, ...] = (),
    gate_samples: int = 0,
) -> ConvertData:
    """Representative images from the training side of ``data``; validation from the run's split.

    ``gate_samples`` > 0 also picks that many training-side images (stratified; all of them when the
    whole training side is loaded) for the lesion gate.

    When the run folder has a ``split.json`` its validation list is used (so fidelity is measured on
    the same images as training's evaluation) and kept out of the representative set; otherwise a
    leak-free 20% split of ``data`` is made here.
    """
    if task == "auto":
        task = "binary" if set(contract.labels) == {"benign", "malignant"} else "multiclass"
    more = more_collections(run_dir, data)
    try:
        if more:  # a multi-collection run: every collection, each label as training mapped it
            all_samples = [s for p in (data, *more) for s in map_labels(list(load_dataset(p, "auto", task).samples),
                                                                         contract.labels)]  # fmt: skip
        else:
            all_samples = list(load_dataset(data, "auto", task).samples)
    except DatasetError as exc:
        raise RepresentativeError(str(exc)) from exc
    _labels_of(all_samples, contract, str(data))
    split = RunFolder(run_dir).split() if run_dir else None
    if split is not None:
        split_file = RunFolder(run_dir).split_file
        listed = [str(Path(p).resolve()) for p in split["validation"]]
        by_path = {str(s.path.resolve()): s for s in all_samples}
        val_samples = [by_path[p] for p in listed if p in by_path]
        held_out = set(listed) | {str(Path(p).resolve()) for p in split.get("test", [])}  # test: never calibrated on
        rest = [p for p in by_path if p not in held_out]
        trained = {str(Path(p).resolve()) for p in split.get("train", ())}  # --train-on: a part of the rest
        if trained.intersection(rest):
            rest = [p for p in rest if p in trained]
        train_samples = [by_path[p] for p in rest]
        roots = _roots((data, *more))
        # not: collections not given, nor images with benign/malignant labels (no class to score them by)
        named = split.get("validation_labels") or [contract.labels[0]] * len(listed)
        ours = [p for p, label in zip(listed, named)
                if label in contract.labels and any(Path(p).is_relative_to(r) for r in roots)]  # fmt: skip
        lost = len(ours) - sum(p in by_path for p in ours)
        if lost and RunFolder(run_dir).trained_on(data):
            raise RepresentativeError(
                f"{lost} of the {len(ours)} validation images of {data} in {split_file} are no longer there: "
                "the data changed since training, so fidelity cannot be measured on the run's split"
            )
        if not val_samples:  # the run trained on other data: validate on a leak-free split of this data
            log.warning("%s is not the data %s trained on: validating on a new split of it", data, run_dir)
            val_samples, train_samples = _holdout(train_samples, contract, seed)
    else:
        val_samples, train_samples = _holdout(all_samples, contract, seed)
    y_train = _labels_of(train_samples, contract, str(data))
    pick = stratified_pick(y_train, samples, seed)
    if len(pick) < min(samples, 10):
        raise RepresentativeError(f"only {len(pick)} representative images available in {data}; need at least 10")
    rep = load_images([train_samples[i] for i in pick], contract)
    val = load_images(val_samples, contract)
    log.info("representative set: %d images; validation set: %d images", len(rep.samples), len(val.samples))
    training = load_images(train_samples, contract).images if with_training else None
    gate = None
    if gate_samples:
        gate = (
            training
            if training is not None
            else load_images(
                [train_samples[i] for i in stratified_pick(y_train, gate_samples, seed + 1)], contract
            ).images
        )
    val_labels = _labels_of(val.samples, contract, str(data))
    roots = _roots((data, *more))
    collection = np.array(
        [next((k for k, r in enumerate(roots) if s.path.resolve().is_relative_to(r)), 0) for s in val.samples]
    )
    at = None
    if threshold_on:
        roots = _roots(threshold_on)
        at = np.array([any(s.path.resolve().is_relative_to(r) for r in roots) for s in val.samples])
        if not contract.malignant_indices:
            raise RepresentativeError("the model has no malignant classes: --threshold-on has no threshold to set")
        if not np.isin(val_labels[at], contract.malignant_indices).any():
            raise RepresentativeError(f"no malignant validation image in {', '.join(map(str, threshold_on))} to set "
                                      "the threshold on")  # fmt: skip
    return ConvertData(rep.images, val.images, val_labels, str(data), training, at, gate, collection)


def collection_names(data: str | Path, run_dir: Path | None) -> tuple[str, ...]:
    """The names of the run's collections, in the order of ``ConvertData.validation_collection``."""
    return tuple(collection_name(p) for p in (data, *more_collections(run_dir, data)))


def collection_name(path: str | Path) -> str:
    """A collection's short name: its folder, or the folder above a ``train`` folder (isic9/train: isic9)."""
    path = Path(path).resolve()
    folder = path if path.is_dir() else path.parent
    return folder.parent.name if folder.name in ("train", "images") else folder.name


def _roots(collections: tuple[str | Path, ...]) -> list[Path]:
    """The folder each collection's images lie under (a CSV collection: its CSV's folder)."""
    return [Path(d).resolve() if Path(d).is_dir() else Path(d).resolve().parent for d in collections]


def recorded_data(run_dir: Path | None) -> Path | None:
    """The DATA a run folder was trained on, or None."""
    first = RunFolder(run_dir).collections()[:1] if run_dir else []
    return first[0] if first else None


def more_collections(run_dir: Path | None, data: str | Path) -> tuple[str, ...]:
    """The other collections a run trained on with ``data`` (its DATA), or () for any other data."""
    if run_dir is None or not RunFolder(run_dir).trained_on(data):
        return ()
    return tuple(str(p) for p in RunFolder(run_dir).collections()[1:])


def _holdout(samples: list[Sample], contract: ModelContract, seed: int) -> tuple[list[Sample], list[Sample]]:
    loaded = load_images(samples, contract)
    y = _labels_of(loaded.samples, contract, "data")
    train_idx, val_idx = split_indices(y, duplicate_groups(loaded), 0.2, seed)
    return [loaded.samples[i] for i in val_idx], [loaded.samples[i] for i in train_idx]
