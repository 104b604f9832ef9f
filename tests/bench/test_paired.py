"""The paired rule's arithmetic: a gain on nearly every seed whose interval clears zero passes; others fail."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.paired import PairedSet, judge, mean_auc, required_wins


def _seed(rng: np.random.Generator, lift: float, n: int = 600) -> dict[str, PairedSet]:
    """Two test parts; the lever's scores are the base's plus ``lift`` times the truth plus its own noise."""
    out = {}
    for name in ("a", "b"):
        bad = rng.random(n) < 0.3
        base = bad * 1.0 + rng.normal(0, 1.2, n)
        out[name] = PairedSet(bad, base, base + lift * bad + rng.normal(0, 0.05, n))
    return out


def test_required_wins_is_all_of_a_few_seeds_and_all_but_one_of_five():
    assert [required_wins(n) for n in (1, 3, 4, 5, 6)] == [1, 3, 4, 4, 5]


def test_a_clear_gain_on_fewer_than_three_seeds_is_reported_but_not_kept():
    rng = np.random.default_rng(4)
    verdict = judge([_seed(rng, 0.3) for _ in range(2)], n_boot=300)
    assert verdict.wins == 2 and verdict.interval[0] > 0 and not verdict.keep
    assert "fewer than 3 seeds" in verdict.line()


def test_the_rank_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    bad = rng.random(300) < 0.4
    score = np.round(rng.normal(size=300) + bad, 1)  # many ties
    assert mean_auc([(bad, score)]) == pytest.approx(roc_auc_score(bad, score), abs=1e-12)


def test_a_real_lever_passes_on_every_seed_with_an_interval_above_zero():
    rng = np.random.default_rng(1)
    verdict = judge([_seed(rng, 0.25) for _ in range(5)], n_boot=300)
    assert verdict.keep and verdict.wins >= 4 and verdict.interval[0] > 0 and verdict.mean_gain > 0
    assert "kept" in verdict.line()


def test_a_gain_whose_interval_spans_zero_fails_even_when_most_seeds_rise():
    rng = np.random.default_rng(2)
    seeds = [_seed(rng, 0.0) for _ in range(5)]  # noise only: the lever changes nothing but its own noise
    verdict = judge(seeds, n_boot=300)
    assert verdict.interval[0] <= 0 <= verdict.interval[1] and not verdict.keep


def test_four_of_five_with_a_clear_interval_passes_but_three_of_five_does_not():
    rng = np.random.default_rng(3)
    base = [_seed(rng, 0.3) for _ in range(5)]
    one_loss = list(base)
    one_loss[0] = {n: PairedSet(s.bad, s.base, s.base - 0.05 * s.bad) for n, s in base[0].items()}
    verdict = judge(one_loss, n_boot=300)
    assert verdict.wins == 4 and verdict.keep
    two_losses = list(one_loss)
    two_losses[1] = {n: PairedSet(s.bad, s.base, s.base - 0.05 * s.bad) for n, s in base[1].items()}
    verdict = judge(two_losses, n_boot=300)
    assert verdict.wins == 3 and not verdict.keep


def test_balanced_accuracy_matches_scikit_learn_and_judges_a_per_class_lever():
    from sklearn.metrics import balanced_accuracy_score

    from bench.paired import balanced_accuracy, mean_balanced_accuracy

    rng = np.random.default_rng(5)
    y = rng.choice(4, 800, p=[0.7, 0.2, 0.07, 0.03])
    predicted = np.where(rng.random(800) < 0.7, y, rng.choice(4, 800))
    assert balanced_accuracy(y, predicted) == pytest.approx(balanced_accuracy_score(y, predicted), abs=1e-12)

    def seed(fix: float) -> dict[str, PairedSet]:  # the lever corrects a share of the rare classes' errors
        y = rng.choice(4, 800, p=[0.7, 0.2, 0.07, 0.03])
        base = np.where(rng.random(800) < 0.6, y, 0)
        lever = np.where((y > 1) & (rng.random(800) < fix), y, base)
        return {"a": PairedSet(y, base, lever)}

    assert judge([seed(0.5) for _ in range(3)], figure=mean_balanced_accuracy, n_boot=300).keep
    assert not judge([seed(0.0) for _ in range(3)], figure=mean_balanced_accuracy, n_boot=300).keep
