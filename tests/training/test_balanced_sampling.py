"""`train --balance sampling`: batches draw every class equally often, and not the same images every epoch."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.pipeline import ImageRows, image_dataset  # noqa: E402


def test_balanced_batches_draw_each_class_equally_and_vary():
    labels = np.array([0] * 160 + [1] * 30 + [2] * 10)
    images = np.zeros((200, 4, 4, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(200) % 256  # which image it was
    targets = np.eye(3, dtype="float32")[labels]
    batches = iter(image_dataset(ImageRows.of(images), targets, 20, seed=0, balanced=True))
    epochs = [[next(batches) for _ in range(10)] for _ in range(3)]  # 3 epochs of 200 images, one iterator
    counts = [np.bincount(np.concatenate([b[1].numpy().argmax(1) for b in e]), minlength=3) for e in epochs]
    assert all(c.sum() == 200 and c.min() >= 45 for c in counts), counts  # ~67 each, not 160 / 30 / 10
    seen = [np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in e]) for e in epochs]
    assert not np.array_equal(seen[0], seen[1])  # the next epoch is another draw
    plain = np.concatenate([b[1].numpy().argmax(1) for b in image_dataset(ImageRows.of(images), targets, 20, seed=0)])
    assert np.bincount(plain).tolist() == [160, 30, 10]  # without it: every image once an epoch
