"""The one home of training settings and their defaults: ``train``'s options are these fields, and a
field's default is the command's (``train(TrainConfig(data=..., out=...))`` builds what ``train DATA``
builds). Light to import: no TensorFlow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["FitConfig", "SegmentConfig", "TrainConfig", "config_from"]


@dataclass(frozen=True)
class FitConfig:
    """What every trained model shares: data, backbone, input size and the two-phase schedule."""

    data: str
    out: str
    arch: str = "large-minimalistic"
    weights: str = "imagenet"  # the offline files in ../shared/weights, none, a .weights.h5 or a run folder
    image_size: int = 128
    head_epochs: int = 1  # the head on a frozen backbone ...
    epochs: int = 6  # ... then everything (an upper bound: early stopping)
    batch_size: int = 32
    learning_rate: float = 3e-4
    val_fraction: float = 0.2
    seed: int = 0
    patience: int = 4
    max_images: int = 0  # 0 = all; for quick runs and tests
    strategy: str = "auto"  # tf.distribute: auto, one, mirrored or multi-worker (training/distribute.py)


@dataclass(frozen=True)
class TrainConfig(FitConfig):
    """A classifier (``train DATA [DATA ...]``)."""

    format: str = "auto"
    task: str = "multiclass"  # or "binary"
    balance: str = "weights"  # "weights" (class-weighted loss), "sampling" (classes drawn equally often) or "none"
    sensitivity: float = 0.9  # the malignant sensitivity the risk threshold is chosen for
    color_constancy: str = "shades_of_gray"  # or "none": part of the preprocessing, stored in the contract
    white_balance: float = 0.0  # augmentation: each RGB channel scaled by up to x/÷ (1 + this), a lamp or camera change
    more_data: tuple[str, ...] = ()  # more collections, trained, validated and tested on like DATA
    train_on: tuple[str, ...] = ()  # train only on these collections' training parts (default: all)
    test_fraction: float = 0.0  # a fixed, lesion-grouped test part of every collection, never selected on
    mixed_precision: bool = False  # float16 compute on GPUs


@dataclass(frozen=True)
class SegmentConfig(FitConfig):
    """A lesion segmenter (``train DATA --task segment``); defaults are the shipped PH2 segmenter's recipe."""

    task: str = "segment"  # what a checkpoint's saved configuration resumes as
    arch: str = "small"
    image_size: int = 224
    head_epochs: int = 3  # decoder only, encoder frozen
    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-3
    patience: int = 10
    more_data: tuple[str, ...] = ()  # more folders of images with masks, trained on with DATA
    hold_out: str = ""  # a classifier run whose test images (by id) stay out, unseen by the segmenter too


def config_from(cls: type[FitConfig], saved: dict[str, Any], **changes: Any) -> Any:
    """``cls`` from a configuration saved as JSON (lists back to tuples, unknown keys ignored)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in fields}
    return cls(**(values | changes))
