"""Shared fixtures: paths to the real shared data and a tiny self-describing TFLite classifier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.model.contract import ModelContract

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SKINEDGE_SHARED_DATA", ROOT.parent / "shared" / "data"))

TINY_LABELS = ("nevus", "melanoma", "keratosis")
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v3_small_224_imagenet_no_top.weights.h5"


@pytest.fixture(scope="session", autouse=True)
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training's preprocessed-image cache in a folder of the test session, not the user's home."""
    path = tmp_path_factory.mktemp("image-cache")
    os.environ["SKINEDGE_CACHE"] = str(path)
    return path


def run_command(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one of the installed console commands (train, convert, edge-detect) as a user would."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [str(Path(sys.executable).parent / args[0]), *args[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (clone with ../shared/data beside it)")
    return path


@pytest.fixture(scope="session")
def tiny_contract() -> ModelContract:
    return ModelContract(
        task="classify",
        labels=TINY_LABELS,
        image_size=64,
        malignant_labels=("melanoma",),
        temperature=1.5,
        risk_threshold=0.3,
        uncertain_below=0.5,
        arch="tiny_cnn",
    )


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory, tiny_contract: ModelContract) -> Path:
    """An int8 TFLite classifier (uint8 input, int8 output logits) with its contract embedded.

    Built with TensorFlow (the [train] extra) once per session; its weights are random but fixed.
    """
    pytest.importorskip("tensorflow")
    import keras

    from convert.quantize import QuantizeConfig, quantize
    from edge.model.modelfile import embed_contract

    keras.utils.set_random_seed(0)
    size = tiny_contract.image_size
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(tiny_contract.labels))(x)
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).integers(0, 256, (16, size, size, 3)).astype(np.uint8)
    converted = quantize(model, QuantizeConfig.int8(images))
    path = tmp_path_factory.mktemp("model") / "tiny_int8.tflite"
    path.write_bytes(embed_contract(converted, tiny_contract))
    return path


def synthetic_lesion(rng: np.random.Generator, kind: int, size: int = 96) -> np.ndarray:
    """A made-up 'lesion' (RGB uint8): a blob whose colour and shape depend on ``kind``."""
    import cv2

    skin = np.array([224, 180, 160]) + rng.integers(-15, 15, 3)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = np.clip(skin, 0, 255)
    colour = [(90, 50, 30), (30, 20, 20), (170, 40, 60), (120, 90, 60)][kind % 4]
    centre = (size // 2 + int(rng.integers(-8, 8)), size // 2 + int(rng.integers(-8, 8)))
    axes = (int(size * 0.25) + int(rng.integers(0, 6)), int(size * (0.15 + 0.08 * (kind % 3))))
    cv2.ellipse(image, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1)
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_image(path: Path, image: np.ndarray) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path


def make_folder_dataset(root: Path, classes: tuple[str, ...] = TINY_LABELS, per_class: int = 12, seed: int = 0) -> Path:
    """A folder-per-class dataset of synthetic lesions."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{name[:3]}_{i:03d}.jpg", synthetic_lesion(rng, k))
    return root


@pytest.fixture()
def folder_dataset(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "data")
