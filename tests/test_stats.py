"""The two-way bootstrap of forensics/stats.py against references: sklearn's AUC on repeated items, scipy's
bootstrap where only the seeds are drawn, and the exact distribution enumerated by brute force."""
import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import roc_auc_score

from forensics import stats


def test_weighted_auc_equals_auc_of_repeated_items():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.normal(size=40) + labels, 1)  # rounded: many ties
    weights = rng.integers(0, 4, size=(5, 40))
    weights[:, :2] = 1  # keep both classes in every row
    labels[:2] = (0, 1)
    got = stats.weighted_auc(labels, scores, weights)
    for row, w in zip(got, weights):
        want = roc_auc_score(np.repeat(labels, w), np.repeat(scores, w))
        assert row == pytest.approx(want, abs=1e-12)
    assert stats.weighted_auc(labels, scores, np.ones(40)) == pytest.approx(roc_auc_score(labels, scores))


def test_units_are_drawn_by_class_and_shared_by_their_items():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    units = np.array(["r1", "r1", "r2", "r2", "f1", "f1", "f2", "f2", "f3", "f3"])  # 2 frames a video
    weights = stats._unit_draws(units, labels, 500, np.random.default_rng(1))
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 8] == weights[:, 9]).all()
    assert (weights[:, :4].sum(axis=1) == 4).all()  # two real videos drawn, two frames each
    assert (weights[:, 4:].sum(axis=1) == 6).all()
    assert weights[:, 0].mean() == pytest.approx(1, abs=0.1)


def test_seeds_alone_match_scipys_bootstrap_of_the_paired_differences():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(30), np.ones(30)]
    units = np.arange(60)
    a = rng.normal(size=(12, 60)) + 0.8 * labels
    b = rng.normal(size=(12, 60)) + 0.6 * labels
    got = stats.bootstrap_interval(a, b, labels, units, replicates=20_000, resample=("seeds",))
    diffs = [roc_auc_score(labels, x) - roc_auc_score(labels, y) for x, y in zip(a, b)]
    want = scipy_stats.bootstrap((diffs,), np.mean, n_resamples=20_000, method="percentile",
                                 random_state=np.random.default_rng(3)).confidence_interval
    assert got["estimate"] == pytest.approx(np.mean(diffs))
    assert got["ci"] == pytest.approx([want.low, want.high], abs=0.004)


def test_unpaired_draws_are_wider_when_seeds_move_both_arms_together():
    rng = np.random.default_rng(4)
    labels = np.r_[np.zeros(20), np.ones(20)]
    shared = rng.normal(size=(10, 40))  # a seed's effect common to both arms: pairing cancels it
    a, b = shared + 0.5 * labels + 0.2 * rng.normal(size=(10, 40)), shared + 0.2 * rng.normal(size=(10, 40))
    paired = stats.bootstrap_interval(a, b, labels, np.arange(40), replicates=4000, resample=("seeds",))
    unpaired = stats.bootstrap_interval(a, b, labels, np.arange(40), replicates=4000, resample=("seeds",),
                                        paired=False)
    assert unpaired["sd"] > 1.5 * paired["sd"]
    with pytest.raises(ValueError, match="pairing needs"):
        stats.bootstrap_difference(a, b[:5], labels, np.arange(40))


def test_two_way_draws_match_the_exact_distribution():
    """2 seeds, 2 real and 2 fake videos of 2 frames each: every equally likely (seed draw, real draw, fake
    draw) enumerated, 4 x 4 x 4 = 64 outcomes, against 40,000 replicates."""
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    units = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    a = np.array([[0.1, 0.5, 0.3, 0.2, 0.6, 0.4, 0.9, 0.25], [0.3, 0.1, 0.7, 0.2, 0.8, 0.2, 0.6, 0.5]])
    b = np.array([[0.4, 0.2, 0.1, 0.6, 0.5, 0.3, 0.7, 0.1], [0.2, 0.6, 0.3, 0.3, 0.4, 0.9, 0.5, 0.2]])
    exact = []
    for seeds, real, fake in itertools.product(itertools.product(range(2), repeat=2),
                                               itertools.product((0, 1), repeat=2),
                                               itertools.product((2, 3), repeat=2)):
        counts = np.bincount([*real, *fake], minlength=4)
        weights = counts[units]
        exact.append(np.mean([stats.weighted_auc(labels, a[s], weights) - stats.weighted_auc(labels, b[s], weights)
                              for s in seeds]))
    exact = np.array(exact)
    draws = stats.bootstrap_difference(a, b, labels, units, replicates=40_000, seed=5)
    assert draws.mean() == pytest.approx(exact.mean(), abs=0.006)
    assert draws.std() == pytest.approx(exact.std(), rel=0.03)
    for value in np.unique(exact):  # each outcome's probability
        assert np.mean(np.isclose(draws, value)) == pytest.approx(np.mean(np.isclose(exact, value)), abs=0.01)


def test_a_difference_draws_as_the_two_arm_bootstrap_always_did():
    """bootstrap_difference against the two-arm bootstrap written out plainly (one chunk: the test videos
    drawn, then the seeds of a, then those of b unless paired; each AUC by sklearn on the repeated frames):
    the same replicates, so the step-2 report of docs/ablation recomputes as committed."""
    rng = np.random.default_rng(6)
    labels, units = np.r_[np.zeros(10), np.ones(10)], np.repeat(np.arange(10), 2)
    a, b = rng.normal(size=(3, 20)) + labels, rng.normal(size=(3, 20))
    n = 50
    for paired in (True, False):
        got = stats.bootstrap_difference(a, b, labels, units, replicates=n, seed=7, paired=paired, chunk=n)
        draw = np.random.default_rng(7)
        weights = stats._unit_draws(units, labels, n, draw)
        pick_a = draw.integers(0, 3, size=(n, 3))
        pick_b = pick_a if paired else draw.integers(0, 3, size=(n, 3))
        want = [np.mean([roc_auc_score(np.repeat(labels, w), np.repeat(a[i], w)) for i in pa])
                - np.mean([roc_auc_score(np.repeat(labels, w), np.repeat(b[i], w)) for i in pb])
                for w, pa, pb in zip(weights.astype(int), pick_a, pick_b)]
        assert got == pytest.approx(want, abs=1e-12)


def test_a_difference_of_differences_matches_its_exact_distribution():
    """Four groups of 2 seeds paired by seed, contrast (1, -1, -1, 1), 2 real and 2 fake videos of 2 frames:
    the 64 equally likely (seed draw, real draw, fake draw) outcomes enumerated, against 40,000 replicates;
    the estimate is the same contrast of sklearn's AUCs."""
    rng = np.random.default_rng(8)
    labels, units = np.array([0, 0, 0, 0, 1, 1, 1, 1]), np.array([0, 0, 1, 1, 2, 2, 3, 3])
    groups = [np.round(rng.uniform(size=(2, 8)) + shift * labels, 2) for shift in (0.6, 0.2, 0.3, 0.1)]
    coefficients = [1, -1, -1, 1]
    exact = []
    for seeds, real, fake in itertools.product(itertools.product(range(2), repeat=2),
                                               itertools.product((0, 1), repeat=2),
                                               itertools.product((2, 3), repeat=2)):
        weights = np.bincount([*real, *fake], minlength=4)[units]
        exact.append(sum(c * np.mean([stats.weighted_auc(labels, g[s], weights) for s in seeds])
                         for c, g in zip(coefficients, groups)))
    exact = np.array(exact)
    draws = stats.bootstrap_contrast(groups, coefficients, labels, units, replicates=40_000, seed=9)
    assert draws.mean() == pytest.approx(exact.mean(), abs=0.006)
    assert draws.std() == pytest.approx(exact.std(), rel=0.03)
    for value in np.unique(exact):
        assert np.mean(np.isclose(draws, value)) == pytest.approx(np.mean(np.isclose(exact, value)), abs=0.01)
    got = stats.contrast_interval(groups, coefficients, labels, units, replicates=100)
    want = sum(c * np.mean([roc_auc_score(labels, s) for s in g]) for c, g in zip(coefficients, groups))
    assert got["estimate"] == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="pairing needs"):
        stats.bootstrap_contrast([groups[0], groups[1][:1]], [1, -1], labels, units)
