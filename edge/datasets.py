"""Read labelled dermoscopy datasets in their real formats (light: the device reads them to recalibrate).

Four layouts, detected automatically or named:

* ``folder``: one sub-folder per class (``isic9/train/melanoma/*.jpg``);
* ``ham10000``: ``HAM10000_metadata.csv`` (lesion_id, image_id, dx, ...) + the images, found in
  ``images/``, ``HAM10000_images_part_1/2`` or beside the CSV;
* ``isic-csv``: an ISIC challenge ground-truth CSV (an ``image`` column, one 0/1 column per class)
  + the images beside it or in a sibling folder;
* ``label-csv``: a CSV naming each image and its label (``image_id,diagnosis`` as in PH2, or
  ``image,label``; a ``lesion_id`` column is kept) + the images in ``images/``, a sibling folder or beside it.

``task="binary"`` maps diagnoses to benign / malignant (mel, bcc, scc, akiec are malignant).
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edge.image.preprocess import IMAGE_SUFFIXES
from edge.model.contract import DIAGNOSIS_NAMES, MALIGNANT_DIAGNOSES

__all__ = [
    "FORMATS",
    "ISIC2019_CLASSES",
    "DatasetError",
    "Dataset",
    "Sample",
    "detect_format",
    "load_dataset",
    "map_label",
    "map_labels",
    "to_binary",
]

log = logging.getLogger(__name__)

FORMATS = ("folder", "ham10000", "isic-csv", "label-csv")
IMAGE_COLUMNS = ("image", "image_id", "image_name", "filename", "file")  # label-csv: first present wins
LABEL_COLUMNS = ("label", "diagnosis", "dx", "class")
HAM_CSV = "HAM10000_metadata.csv"
BINARY_LABELS = ("benign", "malignant")
ISIC2019_CLASSES = ("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC")  # the taxonomy of several collections


class DatasetError(ValueError):
    """A dataset is missing, empty or malformed."""


_ISIC_ID = re.compile(r"ISIC_\d{7}")

SYNONYMS = DIAGNOSIS_NAMES  # codes and PH2's grades to the ISIC 9-class names


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    group: str = ""  # samples sharing a group (lesion) stay on one side of a split

    @property
    def image_id(self) -> str:
        """The ISIC archive id (ISIC_0024306) in the file name, or "": one image across collections."""
        match = _ISIC_ID.search(self.path.stem)
        return match.group(0) if match else ""


@dataclass(frozen=True)
class Dataset:
    samples: tuple[Sample, ...]
    labels: tuple[str, ...]
    source: str
    format: str

    def counts(self) -> dict[str, int]:
        c = Counter(s.label for s in self.samples)
        return {label: c.get(label, 0) for label in self.labels}


def to_binary(label: str) -> str:
    """benign or malignant for a diagnosis name in any of the supported spellings."""
    return "malignant" if label.strip().lower() in MALIGNANT_DIAGNOSES else "benign"


def map_label(label: str, labels: tuple[str, ...]) -> str | None:
    """The name in ``labels`` that ``label`` means (case-insensitive), directly or through SYNONYMS in
    either direction: "akiec" and "actinic keratosis" both find "AK"; None if nothing matches."""
    by_lower = {name.lower(): name for name in labels}
    key = label.lower()
    direct = by_lower.get(key) or by_lower.get(SYNONYMS.get(key, ""))
    if direct:
        return direct
    by_meaning: dict[str, str] = {}
    for name in labels:
        by_meaning.setdefault(SYNONYMS.get(name.lower(), name.lower()), name)
    return by_meaning.get(SYNONYMS.get(key, key))


def map_labels(samples: list[Sample], labels: tuple[str, ...]) -> list[Sample]:
    """Rename labels to ``labels`` through SYNONYMS (case-insensitive); drop samples that do not map."""
    out = []
    for s in samples:
        name = map_label(s.label, labels)
        if name:
            out.append(Sample(s.path, name, s.group))
    dropped = len(samples) - len(out)
    if dropped:
        log.info("%d images with labels outside %s left out", dropped, list(labels))
    return out


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def detect_format(root: Path) -> str:
    """Guess the layout of ``root`` (a folder or a CSV file)."""
    if root.is_file():
        if root.name == HAM_CSV:
            return "ham10000"
        if root.suffix.lower() == ".csv":
            return _csv_format(root)
        raise DatasetError(f"{root} is a file but not a CSV; pass a dataset folder or a ground-truth CSV")
    if (root / HAM_CSV).is_file():
        return "ham10000"
    csvs = sorted(p for p in root.iterdir() if p.suffix.lower() == ".csv")
    if csvs:
        return _csv_format(csvs[0]) if len(csvs) == 1 else "isic-csv"
    if any(p.is_dir() for p in root.iterdir()):
        return "folder"
    raise DatasetError(f"cannot tell the layout of {root}: no class folders, no {HAM_CSV}, no CSV")


def _csv_format(path: Path) -> str:
    """label-csv when the header names a label column, else an ISIC one-hot ground truth."""
    header = {c.strip().lower() for c in _read_csv(path)[0]}
    return "label-csv" if header & set(LABEL_COLUMNS) else "isic-csv"


def _the_csv(root: Path) -> Path:
    if root.is_file():
        return root
    csvs = sorted(root.glob("*.csv"))
    if len(csvs) != 1:
        raise DatasetError(f"expected one CSV in {root}, found {len(csvs)}")
    return csvs[0]


def _read_folder(root: Path) -> list[Sample]:
    samples = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in _images_in(class_dir):
            samples.append(Sample(path, class_dir.name, group=""))
    return samples


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if not rows:
        raise DatasetError(f"{path} has no data rows")
    return rows


def _image_index(folders: list[Path]) -> dict[str, Path]:
    """image stem -> path over the given folders (first wins)."""
    index: dict[str, Path] = {}
    for folder in folders:
        if folder.is_dir():
            for path in _images_in(folder):
                index.setdefault(path.stem, path)
    return index


def _resolve_images(rows_ids: list[str], index: dict[str, Path], csv_path: Path) -> dict[str, Path]:
    found = {i: index[i] for i in rows_ids if i in index}
    missing = len(rows_ids) - len(found)
    if not found:
        raise DatasetError(f"none of the {len(rows_ids)} images listed in {csv_path} were found near it")
    if missing:
        log.warning("%d of %d images listed in %s are missing; skipped", missing, len(rows_ids), csv_path.name)
    return found


def _read_ham10000(root: Path) -> list[Sample]:
    csv_path = root if root.is_file() else root / HAM_CSV
    base = csv_path.parent
    rows = _read_csv(csv_path)
    needed = {"lesion_id", "image_id", "dx"}
    if not needed <= set(rows[0]):
        raise DatasetError(f"{csv_path} lacks columns {sorted(needed - set(rows[0]))}; is it HAM10000 metadata?")
    folders = [base / "images", base / "HAM10000_images_part_1", base / "HAM10000_images_part_2", base]
    paths = _resolve_images([r["image_id"] for r in rows], _image_index(folders), csv_path)
    return [
        Sample(paths[r["image_id"]], r["dx"].strip(), group=r["lesion_id"].strip())
        for r in rows
        if r["image_id"] in paths
    ]


def _read_isic_csv(root: Path) -> list[Sample]:
    csv_path, metadata = _isic_csvs(root)
    rows = _read_csv(csv_path)
    columns = list(rows[0])
    classes = [c for c in columns if c not in ("image", "score_weight", "validation_weight")]
    if "image" not in columns or len(classes) < 2:
        raise DatasetError(
            f"cannot read {csv_path}: its columns {columns} fit neither a label CSV (an image column: "
            f"{', '.join(IMAGE_COLUMNS)}; a label column: {', '.join(LABEL_COLUMNS)}) nor an ISIC ground truth "
            "(an 'image' column and one 0/1 column per class)"
        )
    base = csv_path.parent
    folders = [p for p in sorted(base.iterdir()) if p.is_dir()] + [base]
    paths = _resolve_images([r["image"] for r in rows], _image_index(folders), csv_path)
    lesions = {r["image"]: (r.get("lesion_id") or "").strip() for r in _read_csv(metadata)} if metadata else {}
    samples = []
    for r in rows:
        if r["image"] not in paths:
            continue
        try:
            hot = [c for c in classes if float(r[c] or 0) >= 0.5]
        except ValueError as exc:
            raise DatasetError(f"{csv_path}: row {r['image']} has a non-numeric class value") from exc
        if len(hot) != 1:
            raise DatasetError(f"{csv_path}: row {r['image']} is not one-hot over {classes}")
        samples.append(Sample(paths[r["image"]], hot[0], group=lesions.get(r["image"], "")))
    return samples


def _isic_csvs(root: Path) -> tuple[Path, Path | None]:
    """The ground-truth CSV of an ISIC challenge folder and, when beside it, the metadata CSV with lesion ids
    (ISIC 2019: ISIC_2019_Training_GroundTruth.csv + ISIC_2019_Training_Metadata.csv)."""
    if root.is_file():
        return root, None
    csvs = sorted(root.glob("*.csv"))
    headers = {p: {c.strip() for c in _read_csv(p)[0]} for p in csvs}
    metadata = [p for p in csvs if "lesion_id" in headers[p]]
    truth = [p for p in csvs if p not in metadata]
    if len(truth) != 1 or len(metadata) > 1:
        found = ", ".join(p.name for p in csvs) or "none"
        raise DatasetError(f"expected one ground-truth CSV (and at most one with lesion_id) in {root}; found {found}")
    return truth[0], (metadata[0] if metadata else None)


def _read_label_csv(root: Path) -> list[Sample]:
    csv_path = _the_csv(root)
    rows = _read_csv(csv_path)
    columns = {c.strip().lower(): c for c in rows[0]}
    image_col = next((columns[c] for c in IMAGE_COLUMNS if c in columns), None)
    label_col = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
    if image_col is None or label_col is None:
        raise DatasetError(
            f"{csv_path} needs an image column ({', '.join(IMAGE_COLUMNS)}) and a label column "
            f"({', '.join(LABEL_COLUMNS)}); it has {list(rows[0])}"
        )
    group_col = columns.get("lesion_id")
    base = csv_path.parent
    # one walk below the CSV: images/ wins a name, a masks/ folder (PH2's lesion masks) never does
    found = sorted(
        (p for p in _images_in(base) if "masks" not in p.relative_to(base).parts),
        key=lambda p: p.relative_to(base).parts[0] != "images",
    )
    index: dict[str, Path] = {}
    for path in found:
        index.setdefault(path.stem, path)
    ids = [Path(r[image_col].strip()).stem for r in rows]  # "IMD002" or "IMD002.jpg"
    paths = _resolve_images(ids, index, csv_path)
    samples = []
    for image_id, r in zip(ids, rows):
        label = (r[label_col] or "").strip()
        if image_id not in paths:
            continue
        if not label:
            raise DatasetError(f"{csv_path}: image {image_id} has no label")
        samples.append(Sample(paths[image_id], label, group=(r[group_col] or "").strip() if group_col else ""))
    return samples


_READERS = {
    "folder": _read_folder,
    "ham10000": _read_ham10000,
    "isic-csv": _read_isic_csv,
    "label-csv": _read_label_csv,
}


def load_dataset(root: str | Path, fmt: str = "auto", task: str = "multiclass") -> Dataset:
    """Read a labelled dataset.

    Args:
        root: the dataset folder (or its CSV file).
        fmt: "auto" or one of FORMATS.
        task: "multiclass" keeps the diagnoses; "binary" maps them to benign / malignant.

    Raises:
        DatasetError: missing, unreadable, empty or single-class data.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset {root} does not exist")
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt not in _READERS:
        raise DatasetError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")
    samples = _READERS[fmt](root)
    if task == "binary":
        samples = [Sample(s.path, to_binary(s.label), s.group) for s in samples]
    elif task != "multiclass":
        raise DatasetError(f"unknown task {task!r}; expected 'multiclass' or 'binary'")
    if not samples:
        raise DatasetError(f"no images found in {root} (format {fmt})")
    labels = tuple(sorted({s.label for s in samples}))
    if task == "binary":
        labels = BINARY_LABELS
    if len({s.label for s in samples}) < 2:
        raise DatasetError(f"{root} holds a single class ({labels[0]}); a classifier needs at least two")
    return Dataset(tuple(samples), labels, source=str(root), format=fmt)
