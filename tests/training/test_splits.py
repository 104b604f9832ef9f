import shutil

import numpy as np

from edge.datasets import Sample, load_dataset
from edge.image.preprocess import load_image, preprocess
from edge.model.contract import ModelContract
from tests.conftest import make_folder_dataset, shared_data, write_image
from training.splits import duplicate_groups, leaks_into, load_images, split_indices


def _contract(labels, size=64):
    return ModelContract(task="classify", labels=labels, image_size=size)


def test_duplicates_and_lesions_stay_on_one_side(tmp_path):
    root = make_folder_dataset(tmp_path / "d", per_class=10)
    # an exact copy and a near-duplicate (re-encoded, slightly brighter) of one image
    src = root / "melanoma" / "mel_000.jpg"
    shutil.copy(src, root / "melanoma" / "copy.jpg")
    write_image(root / "melanoma" / "near.jpg", np.clip(load_image(src).astype(int) + 6, 0, 255).astype(np.uint8))
    ds = load_dataset(root)
    samples = [Sample(s.path, s.label, "lesion-x" if s.path.name in ("mel_005.jpg", "mel_006.jpg") else "")
               for s in ds.samples]  # fmt: skip
    loaded = load_images(samples, _contract(ds.labels))
    groups = duplicate_groups(loaded)
    names = [s.path.name for s in loaded.samples]
    g = dict(zip(names, groups))
    assert g["mel_000.jpg"] == g["copy.jpg"] == g["near.jpg"]
    assert g["mel_005.jpg"] == g["mel_006.jpg"]
    y = np.array([ds.labels.index(s.label) for s in loaded.samples])
    for seed in range(5):
        tr, va = split_indices(y, groups, 0.25, seed)
        assert not set(groups[tr]) & set(groups[va])
        assert set(y[va]) == set(y)  # stratified: every class in validation
        assert len(set(tr) | set(va)) == len(y)


def test_split_is_reproducible(tmp_path):
    ds = load_dataset(make_folder_dataset(tmp_path / "d", per_class=10))
    loaded = load_images(ds.samples, _contract(ds.labels))
    y = np.array([ds.labels.index(s.label) for s in loaded.samples])
    groups = duplicate_groups(loaded)
    a, b = split_indices(y, groups, 0.2, 7), split_indices(y, groups, 0.2, 7)
    assert all((x == z).all() for x, z in zip(a, b))


def test_corrupt_and_non_image_files_are_skipped_and_listed(tmp_path):
    root = make_folder_dataset(tmp_path / "d", per_class=4)
    (root / "nevus" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "nevus" / "notes.png").write_text("not an image")
    ds = load_dataset(root)
    loaded = load_images(ds.samples, _contract(ds.labels))
    assert len(loaded.samples) == 12
    assert sorted(p.split("/")[-1] for p, _ in loaded.skipped) == ["broken.jpg", "notes.png"]


def test_loaded_images_are_exactly_the_edge_preprocessing(tmp_path):
    ds = load_dataset(make_folder_dataset(tmp_path / "d", per_class=2))
    plain = _contract(ds.labels, size=80)
    for contract in (plain, plain.replace(color_constancy="shades_of_gray")):
        loaded = load_images(ds.samples, contract)
        for sample, array in zip(loaded.samples, loaded.images):
            np.testing.assert_array_equal(array, preprocess(load_image(sample.path), contract))


def test_real_isic9_exact_duplicates_never_straddle_the_split():
    ds = load_dataset(shared_data("isic9", "train"))
    loaded = load_images(ds.samples, _contract(ds.labels, size=64))
    y = np.array([ds.labels.index(s.label) for s in loaded.samples])
    groups = duplicate_groups(loaded)
    tr, va = split_indices(y, groups, 0.2, 0)
    md5 = np.array(loaded.md5)
    assert len(set(md5)) < len(md5)  # the shared set does contain duplicates
    assert not set(md5[tr]) & set(md5[va])


def test_extra_data_copies_of_held_out_images_and_their_lesions_are_left_out(tmp_path):
    held = make_folder_dataset(tmp_path / "held", per_class=2)
    extra = make_folder_dataset(tmp_path / "extra", per_class=3, seed=1)
    original = held / "nevus" / "nev_000.jpg"
    shutil.copy(original, extra / "nevus" / "copy.jpg")  # identical bytes
    shutil.copy(original, held / "nevus" / "ISIC_0024306.jpg")
    shutil.copy(extra / "melanoma" / "mel_000.jpg", extra / "melanoma" / "ISIC_0024306_downsampled.jpg")  # same id
    contract = _contract(("nevus", "melanoma", "keratosis"))
    held_out = load_images(load_dataset(held).samples, contract)
    # mel_001 shows the same lesion as the copy: it must go although it is another photo
    samples = [Sample(s.path, s.label, "lesion-1" if s.path.name in ("copy.jpg", "mel_001.jpg") else "")
               for s in load_dataset(extra).samples]  # fmt: skip
    loaded = load_images(samples, contract)
    leak = leaks_into(loaded, held_out)
    left_out = {s.path.name for s, m in zip(loaded.samples, leak) if m}
    assert left_out == {"copy.jpg", "ISIC_0024306_downsampled.jpg", "mel_001.jpg"}


def test_split_does_not_depend_on_color_constancy(tmp_path):
    root = make_folder_dataset(tmp_path / "d", per_class=10)
    shutil.copy(root / "melanoma" / "mel_000.jpg", root / "melanoma" / "copy.jpg")
    ds = load_dataset(root)
    plain = load_images(ds.samples, _contract(ds.labels))
    corrected = load_images(ds.samples, _contract(ds.labels).replace(color_constancy="shades_of_gray"))
    np.testing.assert_array_equal(plain.descriptors, corrected.descriptors)
    assert not np.array_equal(plain.images, corrected.images)
    np.testing.assert_array_equal(duplicate_groups(plain), duplicate_groups(corrected))


def test_the_validation_fraction_is_the_share_asked_for():
    from training.splits import fold_plan

    assert fold_plan(0.2) == (5, 1) and fold_plan(0.4) == (5, 2) and fold_plan(0.3) == (10, 3)
    assert fold_plan(0.25) == (4, 1) and fold_plan(0.1) == (10, 1) and fold_plan(0.15) == (13, 2)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 1000)
    groups = np.arange(1000) // 2  # lesions of two images
    for fraction in (0.1, 0.2, 0.3, 0.4):
        train, val = split_indices(y, groups, fraction, seed=0)
        assert abs(len(val) / len(y) - fraction) < 0.02, fraction  # 0.4 used to give 0.5
        assert not set(groups[train]) & set(groups[val]) and len(train) + len(val) == len(y)


def test_split_does_not_depend_on_the_input_size(tmp_path):
    # a second stage at 224 px must hold out exactly the images its 128 px first stage held out
    root = make_folder_dataset(tmp_path / "d", per_class=10)
    shutil.copy(root / "melanoma" / "mel_000.jpg", root / "melanoma" / "copy.jpg")
    ds = load_dataset(root)
    small, large = (load_images(ds.samples, _contract(ds.labels, size=s)) for s in (96, 224))
    np.testing.assert_array_equal(small.descriptors, large.descriptors)
    np.testing.assert_array_equal(duplicate_groups(small), duplicate_groups(large))
