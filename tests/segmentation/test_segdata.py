"""Reading image/mask pairs in both layouts, and the shared mask geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.datasets import DatasetError
from edge.image.preprocess import preprocess, preprocess_mask
from edge.model.contract import ModelContract
from tests.segmentation.seg_synth import lesion_pair, write_isic_layout, write_ph2_layout
from training.segment.data import find_mask_pairs, load_mask, load_segmentation_data, split_pairs

CONTRACT = ModelContract(task="segment", labels=("background", "lesion"), image_size=64)


def test_ph2_layout(tmp_path):
    root = write_ph2_layout(tmp_path / "ph2", n=4)
    pairs = find_mask_pairs(root)
    assert [p.image.name for p in pairs] == ["IMD000.jpg", "IMD001.jpg", "IMD002.jpg", "IMD003.jpg"]
    assert all(p.mask == root / "masks" / p.image.with_suffix(".png").name for p in pairs)
    assert [p.stratum for p in pairs] == ["melanoma", "common_nevus", "common_nevus", "melanoma"]


@pytest.mark.parametrize("beside", [True, False])
def test_isic_layout(tmp_path, beside):
    root = write_isic_layout(tmp_path / "isic", n=3, beside=beside)
    pairs = find_mask_pairs(root)
    assert [p.image.name for p in pairs] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg", "ISIC_0000002.jpg"]
    assert all(p.mask.name == p.image.stem + "_segmentation.png" for p in pairs)
    if not beside:  # the input folder itself works too: masks are found in its sibling folder
        again = find_mask_pairs(root / "ISIC2018_Task1-2_Training_Input")
        assert [p.mask for p in again] == [p.mask for p in pairs]


def test_images_without_masks_are_left_out_and_none_at_all_is_an_error(tmp_path):
    root = write_ph2_layout(tmp_path / "ph2", n=3)
    (root / "masks" / "IMD001.png").unlink()
    assert [p.image.stem for p in find_mask_pairs(root)] == ["IMD000", "IMD002"]
    for mask in (root / "masks").iterdir():
        mask.unlink()
    with pytest.raises(DatasetError, match="no image with a mask"):
        find_mask_pairs(root)
    with pytest.raises(DatasetError, match="does not exist"):
        find_mask_pairs(tmp_path / "missing")


def test_load_mask_reads_white_as_lesion(tmp_path):
    _, mask = lesion_pair(0)
    grey = mask // 2 + (mask > 0) * 100  # lesion 227, background 0
    cv2.imwrite(str(tmp_path / "m.png"), grey.astype(np.uint8))
    got = load_mask(tmp_path / "m.png")
    assert got.dtype == np.uint8 and set(np.unique(got)) == {0, 1}
    assert np.array_equal(got, (mask > 0).astype(np.uint8))


def test_mask_geometry_matches_the_image_preprocess():
    """A mask and the image pixels it marks stay aligned through the shared crop and resize."""
    image, mask = lesion_pair(3, height=120, width=200)
    pre_image = preprocess(image, CONTRACT)
    pre_mask = preprocess_mask(mask, CONTRACT)
    assert pre_mask.shape == (64, 64) and set(np.unique(pre_mask)) <= {0, 1}
    dark = pre_image.mean(axis=2) < 150  # the lesion is dark, the skin light
    assert (dark == pre_mask.astype(bool)).mean() > 0.97
    half = preprocess_mask(mask, CONTRACT, size=32)
    assert half.shape == (32, 32)
    assert abs(half.mean() - pre_mask.mean()) < 0.03


def test_loading_skips_a_mask_of_the_wrong_size_and_splits_by_group(tmp_path):
    root = write_ph2_layout(tmp_path / "ph2", n=10)
    cv2.imwrite(str(root / "masks" / "IMD004.png"), np.zeros((10, 10), np.uint8))
    data = load_segmentation_data(find_mask_pairs(root), CONTRACT)
    assert len(data.pairs) == 9 and "IMD004" in data.skipped[0][0] and "10x10" in data.skipped[0][1]
    assert data.images.shape == (9, 64, 64, 3) and data.masks.shape == (9, 64, 64)
    # an exact copy of an image must land on the same side as its original
    (root / "images" / "IMD010.jpg").write_bytes((root / "images" / "IMD000.jpg").read_bytes())
    (root / "masks" / "IMD010.png").write_bytes((root / "masks" / "IMD000.png").read_bytes())
    data = load_segmentation_data(find_mask_pairs(root), CONTRACT)
    for seed in range(4):
        tr, va = split_pairs(data, 0.2, seed)
        names = {data.pairs[i].image.stem for i in va}
        assert ("IMD000" in names) == ("IMD010" in names)
        assert not set(tr) & set(va) and len(tr) + len(va) == len(data.pairs)
