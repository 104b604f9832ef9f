"""The rule every lever is judged by: paired runs, a sign test across seeds and a bootstrap interval.

A lever (more data, a larger input, an ensemble, test-time flips, ...) is measured as a *paired* gain: the
run with it against the run without it, on the same split, with the same seed, scored on the same test
images. The spread *between* seeds says nothing about the noise of that difference. The rule, fixed
before any lever is measured:

    keep the lever when its paired gain in the figure (by default the mean malignancy AUC over the sets)
    is positive on at least 4 of 5 seeds (3 of 3; in general all but one from 5 seeds on, all below; never
    on fewer than 3 seeds), and
    the 95 % bootstrap interval of the mean paired gain excludes zero, resampling the images within each
    test part (the same draw for both runs of a seed) and averaging over seeds.

``judge`` applies it; the benchmark scripts hand it per-image scores. Small levers that pass are
stacked, and the stack is judged against today's recipe the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_SEEDS",
    "PairedSet",
    "Verdict",
    "balanced_accuracy",
    "judge",
    "mean_auc",
    "mean_balanced_accuracy",
    "required_wins",
]

MIN_SEEDS = 3  # fewer pairs of runs are reported, never kept


@dataclass(frozen=True)
class PairedSet:
    """One test part of one seed: who is malignant, and the two runs' scores on the same images.

    For a per-class figure (:func:`mean_balanced_accuracy`), ``bad`` holds each image's class index and
    ``base`` / ``lever`` the two runs' predicted classes; the bootstrap then resamples within each class."""

    bad: np.ndarray  # (N,) bool (or int class indices)
    base: np.ndarray  # (N,) malignancy risk without the lever (or the predicted class)
    lever: np.ndarray  # (N,) ... with it


@dataclass(frozen=True)
class Verdict:
    gains: tuple[float, ...]  # the paired gain of each seed
    wins: int  # seeds with a positive gain
    mean_gain: float
    interval: tuple[float, float]  # 95 % bootstrap interval of the mean gain
    keep: bool

    def line(self) -> str:
        rule = "kept" if self.keep else "not kept"
        if len(self.gains) < MIN_SEEDS:
            rule += f" (fewer than {MIN_SEEDS} seeds)"
        low, high = self.interval
        return (f"paired gain {self.mean_gain:+.4f} (95 % interval {low:+.4f} to {high:+.4f}), positive on "
                f"{self.wins} of {len(self.gains)} seeds: {rule}")  # fmt: skip


def required_wins(seeds: int) -> int:
    """Seeds whose gain must be positive: all of up to 4, all but one of 5 or more (4 of 5, 3 of 3)."""
    return seeds if seeds < 5 else seeds - 1


def _auc(bad: np.ndarray, score: np.ndarray) -> float:
    """Malignancy AUC by ranks (Mann-Whitney), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos = int(bad.sum())
    n_neg = len(bad) - n_pos
    return float((ranks[bad].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def mean_auc(sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The default figure: the mean malignancy AUC over (bad, score) sets."""
    return float(np.mean([_auc(bad, score) for bad, score in sets]))


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (class indices)."""
    classes = int(max(y.max(), predicted.max())) + 1
    counts = np.bincount(y, minlength=classes)
    hits = np.bincount(y[predicted == y], minlength=classes)
    present = counts > 0
    return float((hits[present] / counts[present]).mean())


def mean_balanced_accuracy(sets: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """A per-class figure: the mean balanced accuracy over (class indices, predicted classes) sets."""
    return float(np.mean([balanced_accuracy(y, predicted) for y, predicted in sets]))


def judge(
    seeds: Sequence[Mapping[str, PairedSet]],
    figure: Callable[[Sequence[tuple[np.ndarray, np.ndarray]]], float] = mean_auc,
    n_boot: int = 1000,
    seed: int = 0,
) -> Verdict:
    """Apply the rule to paired runs: ``seeds[i][set_name]`` holds seed i's two runs on one test part."""
    if not seeds:
        raise ValueError("no paired runs to judge")
    rng = np.random.default_rng(seed)

    def gain(runs: Mapping[str, PairedSet], draw: Mapping[str, np.ndarray] | None = None) -> float:
        pick = {name: (draw[name] if draw else slice(None)) for name in runs}
        base = [(s.bad[pick[n]], s.base[pick[n]]) for n, s in runs.items()]
        lever = [(s.bad[pick[n]], s.lever[pick[n]]) for n, s in runs.items()]
        return figure(lever) - figure(base)

    def stratified(s: PairedSet) -> np.ndarray:  # malignant and benign (each class) resampled apart
        strata = [np.flatnonzero(s.bad == v) for v in np.unique(s.bad)[::-1]]  # malignant first
        return np.concatenate([rng.choice(idx, len(idx)) for idx in strata])

    gains = tuple(gain(runs) for runs in seeds)
    boot = [np.mean([gain(runs, {n: stratified(s) for n, s in runs.items()}) for runs in seeds])
            for _ in range(n_boot)]  # fmt: skip
    low, high = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    wins = sum(g > 0 for g in gains)
    keep = len(gains) >= MIN_SEEDS and wins >= required_wins(len(gains)) and low > 0
    return Verdict(gains, wins, float(np.mean(gains)), (low, high), keep)
