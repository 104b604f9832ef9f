import csv

import numpy as np
import pytest

from edge.datasets import DatasetError, detect_format, load_dataset, map_label, to_binary
from tests.conftest import make_folder_dataset, shared_data, synthetic_lesion, write_image


def _write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_folder_format_reads_classes_in_sorted_order(folder_dataset):
    ds = load_dataset(folder_dataset)
    assert ds.format == "folder"
    assert ds.labels == ("keratosis", "melanoma", "nevus")
    assert ds.counts() == {"keratosis": 12, "melanoma": 12, "nevus": 12}


def test_ham10000_keeps_lesion_ids_and_skips_missing_images(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "ham"
    rows = []
    for i, (lesion, dx) in enumerate([("L1", "mel"), ("L1", "mel"), ("L2", "nv"), ("L3", "bkl"), ("L4", "nv")]):
        image_id = f"ISIC_{i:07d}"
        rows.append([lesion, image_id, dx, "histo", 50, "male", "back"])
        if i != 4:  # one listed image is missing
            write_image(root / "images" / f"{image_id}.jpg", synthetic_lesion(rng, i))
    header = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]
    _write_csv(root / "HAM10000_metadata.csv", header, rows)
    assert detect_format(root) == "ham10000"
    ds = load_dataset(root)
    assert len(ds.samples) == 4
    assert [s.group for s in ds.samples][:2] == ["L1", "L1"]
    assert ds.labels == ("bkl", "mel", "nv")
    binary = load_dataset(root, task="binary")
    assert binary.labels == ("benign", "malignant")
    assert [s.label for s in binary.samples] == ["malignant", "malignant", "benign", "benign"]


def test_ham10000_with_wrong_columns_is_a_clear_error(tmp_path):
    root = tmp_path / "ham"
    root.mkdir()
    _write_csv(root / "HAM10000_metadata.csv", ["id", "diagnosis"], [["a", "mel"]])
    with pytest.raises(DatasetError, match="lacks columns"):
        load_dataset(root)


def test_isic_ground_truth_csv(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "isic"
    header = ["image", "MEL", "NV", "BCC"]
    rows = []
    for i, hot in enumerate([0, 1, 2, 1]):
        rows.append([f"ISIC_{i}", *[1.0 if k == hot else 0.0 for k in range(3)]])
        write_image(root / "ISIC2018_Task3_Training_Input" / f"ISIC_{i}.jpg", synthetic_lesion(rng, hot))
    _write_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv", header, rows)
    ds = load_dataset(root)
    assert ds.format == "isic-csv"
    assert [s.label for s in ds.samples] == ["MEL", "NV", "BCC", "NV"]
    # ISIC 2019 keeps lesion ids in a metadata CSV beside the ground truth: images of one lesion stay together
    _write_csv(root / "ISIC2018_Task3_Training_Metadata.csv", ["image", "age_approx", "lesion_id"],
               [["ISIC_0", "30", "L1"], ["ISIC_1", "40", ""], ["ISIC_3", "50", "L1"]])  # fmt: skip
    ds = load_dataset(root)
    assert [s.group for s in ds.samples] == ["L1", "", "", "L1"] and ds.format == "isic-csv"


def test_a_csv_of_image_and_label_is_read_like_ph2(tmp_path):
    rng = np.random.default_rng(4)
    root = tmp_path / "ph2"
    for i, hot in enumerate([0, 1, 1]):
        write_image(root / "images" / f"IMD00{i}.jpg", synthetic_lesion(rng, hot))
        write_image(root / "masks" / f"IMD00{i}.png", synthetic_lesion(rng, hot))  # same stems: not images
    # PH2 ships CRLF line endings; ids with or without a file extension
    (root / "labels.csv").write_bytes(
        b"image_id,diagnosis\r\nIMD000,melanoma\r\nIMD001.jpg,common_nevus\r\nIMD002,atypical_nevus\r\n"
    )
    ds = load_dataset(root)
    assert ds.format == "label-csv"
    assert [(s.path.relative_to(root).as_posix(), s.label) for s in ds.samples] == [
        ("images/IMD000.jpg", "melanoma"),
        ("images/IMD001.jpg", "common_nevus"),
        ("images/IMD002.jpg", "atypical_nevus"),
    ]
    assert load_dataset(root, task="binary").labels == ("benign", "malignant")


def test_a_label_csv_keeps_lesion_ids_and_names_missing_columns(tmp_path):
    rng = np.random.default_rng(5)
    for i in range(3):
        write_image(tmp_path / f"x{i}.png", synthetic_lesion(rng, i % 2))
    _write_csv(
        tmp_path / "cases.csv",
        ["Image", "Label", "lesion_id"],
        [["x0", "nevus", "L1"], ["x1", "melanoma", "L1"], ["x2", "nevus", "L2"]],
    )
    ds = load_dataset(tmp_path / "cases.csv")
    assert [s.group for s in ds.samples] == ["L1", "L1", "L2"] and ds.labels == ("melanoma", "nevus")
    _write_csv(tmp_path / "cases.csv", ["file", "label"], [["x0", "nevus"], ["x1", ""]])
    with pytest.raises(DatasetError, match="x1 has no label"):
        load_dataset(tmp_path / "cases.csv")
    _write_csv(tmp_path / "cases.csv", ["picture", "label"], [["x0", "nevus"]])
    with pytest.raises(DatasetError, match="needs an image column"):
        load_dataset(tmp_path / "cases.csv", fmt="label-csv")
    for header in (["image_id", "finding"], ["image", "finding"]):  # an unknown label column, auto-detected
        _write_csv(tmp_path / "cases.csv", header, [["x0", "nevus"]])
        with pytest.raises(DatasetError, match=r"fit neither a label CSV .* a label column: label, diagnosis"):
            load_dataset(tmp_path / "cases.csv")


def test_isic_csv_that_is_not_one_hot_is_rejected(tmp_path):
    rng = np.random.default_rng(3)
    write_image(tmp_path / "img" / "ISIC_0.jpg", synthetic_lesion(rng, 0))
    _write_csv(tmp_path / "gt.csv", ["image", "MEL", "NV"], [["ISIC_0", 1, 1]])
    with pytest.raises(DatasetError, match="not one-hot"):
        load_dataset(tmp_path / "gt.csv")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "does not exist"),
        (lambda p: make_folder_dataset(p / "one", classes=("nevus",), per_class=3), "single class"),
        (lambda p: (p / "empty" / "a").mkdir(parents=True) or p / "empty", "no images"),
    ],
)
def test_unusable_datasets_say_why(tmp_path, make, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(make(tmp_path))


def test_other_collections_diagnoses_map_onto_the_isic9_names():
    isic9 = ("melanoma", "nevus", "pigmented benign keratosis")
    assert map_label("MEL", isic9) == "melanoma"
    assert map_label("atypical_nevus", isic9) == map_label("common_nevus", isic9) == "nevus"  # PH2
    assert map_label("bkl", isic9) == "pigmented benign keratosis"
    assert map_label("vasc", isic9) is None  # a class the model does not have


def test_every_collection_maps_onto_the_isic2019_classes_as_isic2019_labels_them():
    isic2019 = ("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC")
    pairs = {"akiec": "AK", "actinic keratosis": "AK", "pigmented benign keratosis": "BKL",
             "seborrheic keratosis": "BKL", "bkl": "BKL", "nevus": "NV", "atypical_nevus": "NV", "melanoma": "MEL",
             "squamous cell carcinoma": "SCC", "vascular lesion": "VASC", "dermatofibroma": "DF"}  # fmt: skip
    assert {label: map_label(label, isic2019) for label in pairs} == pairs
    isic9 = ("pigmented benign keratosis", "seborrheic keratosis")  # both of isic9's keratoses stay themselves
    assert map_label("seborrheic keratosis", isic9) == "seborrheic keratosis" and map_label("BKL", isic9) == isic9[0]


def test_binary_mapping_names_the_malignant_diagnoses():
    for name in ("mel", "bcc", "scc", "akiec", "melanoma", "basal cell carcinoma", "actinic keratosis"):
        assert to_binary(name) == "malignant"
    for name in ("nv", "bkl", "df", "vasc", "nevus", "seborrheic keratosis", "dermatofibroma"):
        assert to_binary(name) == "benign"


def test_real_datasets_read_in_their_formats():
    isic9 = load_dataset(shared_data("isic9", "train"))
    assert len(isic9.labels) == 9 and len(isic9.samples) == 2006
    ham = load_dataset(shared_data("ham10000"))
    assert ham.format == "ham10000" and set(ham.labels) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert len({s.group for s in ham.samples}) == len(ham.samples)  # one image per lesion here
    ph2 = load_dataset(shared_data("ph2"))  # labels.csv + images/ (+ masks/)
    assert ph2.format == "label-csv" and len(ph2.samples) == 150
    assert ph2.labels == ("atypical_nevus", "common_nevus", "melanoma")
    isic2019 = load_dataset(shared_data("isic2019"))  # ground truth + metadata with lesion ids
    assert isic2019.format == "isic-csv" and len(isic2019.samples) == 20906
    assert isic2019.labels == ("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC")
    assert any(s.group.startswith("HAM_") for s in isic2019.samples)
