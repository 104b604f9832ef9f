"""The "not a skin lesion" gate: its distance, its threshold, its place in the contract and the file."""

from __future__ import annotations

import numpy as np
import pytest

from edge.model.contract import ContractError, ModelContract
from edge.model.lesion_gate import LesionGate, threshold_for


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    """In-distribution 'features': 2,000 points near a 5-dimensional subspace of a 40-dimensional space."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(40, 5)))[0]
    return 3.0 + rng.normal(size=(2000, 5)) * [4, 3, 2, 1.5, 1] @ basis.T + rng.normal(0, 0.1, (2000, 40))


def test_images_like_the_training_ones_score_about_one_and_others_far_more(features):
    gate = LesionGate.fit(features[:1500], k=5)
    inside = gate.score(features[1500:])
    assert 0.5 < np.median(inside) < 1.5
    off_subspace = features[1500:] + np.random.default_rng(1).normal(0, 1.0, (500, 40))  # leaves the directions
    far_along = features.mean(0) + 10 * (features[1500:] - features.mean(0))  # stays on them, too far out
    assert np.all(gate.score(off_subspace) > np.quantile(inside, 0.99))
    assert np.all(gate.score(far_along) > np.quantile(inside, 0.99))
    assert isinstance(gate.score(features[0]), float)


def test_k_shrinks_to_what_the_data_allows():
    gate = LesionGate.fit(np.random.default_rng(0).normal(size=(6, 4)), k=32)
    assert gate.components.shape == (4, 3)
    with pytest.raises(ValueError, match="at least 3"):
        LesionGate.fit(np.zeros((2, 4)))


def test_threshold_refuses_at_most_the_share_asked_of_every_group():
    rng = np.random.default_rng(0)
    groups = [rng.normal(1.0, 0.1, 500), rng.normal(1.5, 0.2, 300), rng.normal(0.8, 0.1, 40)]
    t = threshold_for(groups, 0.02)
    assert all((g > t).mean() <= 0.02 for g in groups)
    assert (groups[1] > t).mean() > 0.0  # the hardest group sets it: not looser than it must be
    with pytest.raises(ValueError):
        threshold_for([np.array([])])


def test_a_group_too_small_for_the_share_does_not_set_the_threshold():
    """24 images cannot say what 2 % of them is: their largest score (an outlier) would set the threshold."""
    rng = np.random.default_rng(0)
    large, small = rng.normal(1.0, 0.1, 500), np.append(rng.normal(1.0, 0.1, 23), 9.0)
    assert threshold_for([large, small], 0.02) == threshold_for([large], 0.02) < 2.0
    assert threshold_for([small], 0.02) == 9.0  # alone, it is all there is
    assert threshold_for([large, small], 0.0) == 9.0  # refuse none: every image counts


def test_the_gate_travels_in_the_contract_as_float16_and_scores_the_same(features):
    gate = LesionGate.fit(features, k=5).with_threshold(2.5)
    contract = ModelContract(task="classify", labels=("a", "b"), lesion_gate=gate.to_dict())
    back = LesionGate.from_dict(ModelContract.from_json(contract.to_json()).lesion_gate)
    assert back.threshold == 2.5 and back.dims == 40
    np.testing.assert_allclose(back.score(features[:50]), gate.score(features[:50]), rtol=0.02)
    summary = contract.summary()["lesion_gate"]
    assert summary["components"].endswith("base64 characters>") and summary["threshold"] == 2.5


def test_a_gate_on_one_models_share_of_the_features_reads_only_those(features):
    """An ensemble of input sizes: the gate is fitted on, and reads, the smaller model's columns alone."""
    noise = np.random.default_rng(2).normal(0, 50, (len(features), 24))  # the other model's features
    both = np.hstack([noise, features])
    gate = LesionGate.fit(both[:1500], k=5, span=(24, 64)).with_threshold(2.5)
    alone = LesionGate.fit(features[:1500], k=5)
    assert gate.start == 24 and gate.dims == 40
    np.testing.assert_allclose(gate.score(both[1500:]), alone.score(features[1500:]), rtol=1e-5)
    back = LesionGate.from_dict(
        ModelContract(task="classify", labels=("a", "b"), lesion_gate=gate.to_dict()).lesion_gate
    )
    assert back.start == 24 and back.threshold == 2.5
    assert "start" not in alone.to_dict()  # files without one read as before


def test_a_damaged_gate_is_a_contract_error(features):
    entry = LesionGate.fit(features, k=5).to_dict()
    for broken in ({**entry, "components": entry["components"][:-8]}, {**entry, "method": "knn"},
                   {k: v for k, v in entry.items() if k != "mean"}):  # fmt: skip
        with pytest.raises(ContractError, match="lesion gate"):
            ModelContract(task="classify", labels=("a", "b"), lesion_gate=broken)
