"""The training input pipeline: an on-disk cache of preprocessed images feeding tf.data.

Every image is decoded and preprocessed once (``edge.image.preprocess``, in parallel threads) into a
memory-mapped uint8 array of the training size, kept between runs under a key of the files and the
preprocessing. tf.data then shuffles indices, reads a batch of rows from the cache, augments on the
fly and prefetches: memory stays flat however large the dataset (the OS keeps the cache in RAM when
it fits), and a resumed run or another seed reads no image again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge.model.contract import ModelContract

__all__ = ["ImageRows", "cache_dir", "cache_key", "image_dataset"]

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where preprocessed images are kept: $SKINEDGE_CACHE, else ~/.cache/skinedge/images."""
    if os.environ.get("SKINEDGE_CACHE"):
        return Path(os.environ["SKINEDGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "skinedge" / "images"


def cache_key(paths: Sequence[Path], contract: ModelContract) -> str:
    """A digest of the files (path, size, modification time) and of the preprocessing that made the rows."""
    digest = hashlib.sha256()
    recipe = {"size": contract.image_size, "color_constancy": contract.color_constancy, "version": 3}
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    for path in paths:
        st = path.stat() if path.exists() else None
        digest.update(f"{path.resolve()}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return digest.hexdigest()[:24]


class ImageRows:
    """Chosen rows of one or more image arrays (in memory or memory-mapped), read only when asked.

    Indexing with an int, a slice or an index array returns an ndarray of just those images;
    ``rows`` and ``concat`` make new selections without reading any pixel.
    """

    def __init__(self, parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        self.parts = [(base, np.asarray(index, dtype=np.int64)) for base, index in parts]
        self._ends = np.cumsum([len(index) for _, index in self.parts])

    @classmethod
    def of(cls, array: np.ndarray) -> ImageRows:
        return cls([(array, np.arange(len(array)))])

    @classmethod
    def concat(cls, rows: Sequence[ImageRows]) -> ImageRows:
        return cls([part for r in rows for part in r.parts])

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def shape(self) -> tuple[int, ...]:
        base = self.parts[0][0] if self.parts else np.zeros((0, 0, 0, 3))
        return (len(self), *base.shape[1:])

    def _locate(self, positions: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(part, where in the output, row in that part's base) for each part that ``positions`` touch."""
        part_of = np.searchsorted(self._ends, positions, side="right")
        starts = np.concatenate([[0], self._ends[:-1]])
        out = []
        for k in np.unique(part_of):
            where = np.nonzero(part_of == k)[0]
            out.append((int(k), where, self.parts[k][1][positions[where] - starts[k]]))
        return out

    def rows(self, positions: np.ndarray) -> ImageRows:
        """A selection of these rows, in the order given (no pixel is read)."""
        positions = np.asarray(positions, dtype=np.int64)
        part_of = np.searchsorted(self._ends, positions, side="right")
        starts = np.concatenate([[0], self._ends[:-1]])
        parts = []
        for run in np.split(np.arange(len(positions)), np.nonzero(np.diff(part_of))[0] + 1):
            if len(run):
                k = part_of[run[0]]
                parts.append((self.parts[k][0], self.parts[k][1][positions[run] - starts[k]]))
        return ImageRows(parts)

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self[np.array([int(key) % max(len(self), 1)])][0]
        positions = np.arange(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64)
        out = np.empty((len(positions), *self.shape[1:]), dtype=self.parts[0][0].dtype if self.parts else np.uint8)
        for k, where, index in self._locate(positions):
            order = np.argsort(index, kind="stable")  # read a memory map front to back
            out[where[order]] = self.parts[k][0][index[order]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[np.arange(len(self))]
        return out if dtype is None else out.astype(dtype)

    def __iter__(self):
        for start in range(0, len(self), 256):
            yield from self[start : start + 256]


def image_dataset(
    images: ImageRows,
    targets: np.ndarray,
    batch_size: int,
    seed: int,
    augment: Callable | None = None,
    balanced: bool = False,
    weights: np.ndarray | None = None,
    strata: np.ndarray | None = None,
):
    """A tf.data pipeline of (float32 images in [0, 255], targets[, weights]) batches for ``model.fit``.

    Indices are shuffled (reshuffled every epoch) or, when ``balanced``, drawn stratum by stratum (``strata``,
    else the targets' top class) equally often without end (give fit ``steps_per_epoch``); each batch of rows
    is read from ``images`` in one call, augmented on the fly and prefetched. ``weights`` (one per image)
    become Keras sample weights. Shards by data when a tf.distribute strategy spreads it over several workers.
    """
    import tensorflow as tf

    n = len(images)
    index = np.arange(n)
    if balanced:
        label = targets.argmax(1) if strata is None else strata
        per_class = [
            tf.data.Dataset.from_tensor_slices(index[label == c]).shuffle(int((label == c).sum()), seed=seed).repeat()
            for c in np.unique(label)
        ]
        ds = tf.data.Dataset.sample_from_datasets(per_class, seed=seed)
    else:
        ds = tf.data.Dataset.from_tensor_slices(index).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    table = tf.constant(targets)
    weight_of = None if weights is None else tf.constant(weights, tf.float32)
    shape = (None, *images.shape[1:])

    def read(positions):
        batch = tf.numpy_function(lambda p: images[p], [positions], tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, shape)
        x, t = tf.cast(batch, tf.float32), tf.gather(table, positions)
        return (x, t) if weight_of is None else (x, t, tf.gather(weight_of, positions))

    ds = ds.batch(batch_size).map(read, num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(
            lambda x, *rest: (tf.clip_by_value(augment(x, training=True), 0.0, 255.0), *rest),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
