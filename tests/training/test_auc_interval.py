"""The bootstrap interval of the malignancy AUC that the benchmarks report beside each AUC."""

import numpy as np
from sklearn.metrics import roc_auc_score

from training.evaluate import auc_interval


def _scores(n_pos: int, n_neg: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    positive = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    return positive, rng.normal(positive * 1.0, 1.0)  # AUC about 0.76


def test_interval_holds_the_auc_and_narrows_with_more_images():
    small, big = _scores(30, 120), _scores(1000, 4000)
    lo_s, hi_s = auc_interval(*small)
    lo_b, hi_b = auc_interval(*big)
    assert lo_s < roc_auc_score(*small) < hi_s and lo_b < roc_auc_score(*big) < hi_b
    assert 0.08 < hi_s - lo_s < 0.3  # 30 positives: PH2's size
    assert hi_b - lo_b < (hi_s - lo_s) / 3


def test_interval_is_reproducible_and_separable_scores_give_one():
    positive, score = _scores(30, 120)
    assert auc_interval(positive, score) == auc_interval(positive, score)
    assert auc_interval(positive, positive.astype(float)) == [1.0, 1.0]
