"""Statistics over seeds: a variant's mean with its Student-t interval, the paired difference of two variants
run with the same seeds (interval and two-sided paired t-test), and the one-sided tests of that difference
against a margin (no loss, and equivalence by TOST); and a two-way bootstrap of the difference between two
arms' AUCs (or any contrast of several arms', such as a difference of differences) that draws both the
seeds and the test set's videos, for intervals that cover the test set's sampling too. The summaries take
plain lists of numbers and return plain floats (or None where one value cannot say it), so the results go
straight into JSON or CSV."""
import math
import statistics

import numpy as np
from scipy import stats

LEVEL = 0.95


def sd(values):
    """Sample standard deviation; None for a single value."""
    return statistics.stdev(values) if len(values) > 1 else None


def se(values):
    """Standard error of the mean; None for a single value."""
    spread = sd(values)
    return None if spread is None else spread / math.sqrt(len(values))


def interval(values, level=LEVEL):
    """Student-t confidence interval of the mean (scipy.stats.t.interval); None for a single value."""
    error = se(values)
    if error is None:
        return None
    mean, half = statistics.mean(values), float(stats.t.ppf(0.5 + level / 2, len(values) - 1)) * error
    return [mean - half, mean + half]


def describe(values, level=LEVEL):
    """n, mean, SD, standard error and confidence interval of one variant's values over seeds."""
    return {"n": len(values), "mean": statistics.mean(values) if values else None, "sd": sd(values),
            "se": se(values), "ci": interval(values, level) if values else None}


def t_test(diffs):
    """Two-sided p-value of the mean paired difference against 0 (scipy.stats.ttest_rel of the two
    samples); None for a single pair. Identical differences leave nothing uncertain: p is 0, or 1 for 0."""
    error = se(diffs)
    if error is None:
        return None
    mean = statistics.mean(diffs)
    if error == 0:
        return float(mean == 0)
    return float(2 * stats.t(len(diffs) - 1).sf(abs(mean) / error))


def margin_tests(diffs, tolerance):
    """One-sided t-test p-values of the mean paired difference against the margin: "no_loss" rejects
    mean <= -tolerance, "equivalent" (TOST) rejects both mean <= -tolerance and mean >= +tolerance.
    None for a single pair."""
    error = se(diffs)
    if error is None:
        return None
    mean, t = statistics.mean(diffs), stats.t(len(diffs) - 1)
    if error == 0:  # identical differences (e.g. both paths in fp32 on a CPU): nothing is uncertain
        p_above, p_below = float(mean <= -tolerance), float(mean >= tolerance)
    else:
        p_above = float(t.sf((mean + tolerance) / error))   # H0: mean <= -tolerance
        p_below = float(t.cdf((mean - tolerance) / error))  # H0: mean >= +tolerance
    return {"no_loss": p_above, "equivalent": max(p_above, p_below)}


def paired(values, reference, tolerance, level=LEVEL):
    """values - reference, pair by pair (the same seeds in the same order): the differences, their mean,
    SD, standard error, interval and two-sided p-value, the margin tests' p-values, and for scale the SD of
    the difference between two reference runs of different seeds (sqrt(2) x the reference's SD): what one
    run set against one run can resolve at all."""
    if len(values) != len(reference):
        raise ValueError(f"{len(values)} values but {len(reference)} reference values: pair them by seed")
    diffs = [v - r for v, r in zip(values, reference)]
    margins = margin_tests(diffs, tolerance) or {}
    spread = sd(reference)
    return {**describe(diffs, level), "differences": diffs, "p": t_test(diffs),
            "p_no_loss": margins.get("no_loss"), "p_equivalent": margins.get("equivalent"),
            "sd_reference_pair": None if spread is None else math.sqrt(2) * spread}


def weighted_auc(labels, scores, weights):
    """ROC AUC of scores for labels (1 = positive) with each item counted `weights` times, for many weight
    rows at once: weights is (n_items,) or (rows, n_items), the result a float or (rows,) array. Equal to
    sklearn's roc_auc_score on the items repeated that many times (ties count one half), computed from one
    sort, so a bootstrap of thousands of replicates costs little more than one AUC per run."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # one group per tied score
    w = np.atleast_2d(weights)[:, order]
    positive = np.add.reduceat(w * labels[order], starts, axis=1)
    negative = np.add.reduceat(w * ~labels[order], starts, axis=1)
    below = np.cumsum(negative, axis=1) - negative  # negatives scored strictly lower than each group
    auc = (positive * (below + 0.5 * negative)).sum(axis=1) / (positive.sum(axis=1) * negative.sum(axis=1))
    return float(auc[0]) if weights.ndim == 1 else auc


def run_aucs(labels, scores, weights=None):
    """weighted_auc of each run (row) of scores: a list of floats, or with (replicates, n_items) weights a
    (replicates, runs) array."""
    weights = np.ones(np.shape(scores)[1]) if weights is None else weights
    aucs = [weighted_auc(labels, s, weights) for s in scores]
    return aucs if np.ndim(weights) == 1 else np.stack(aucs, axis=1)


def _unit_draws(units, labels, replicates, rng):
    """(replicates, n_items) weights: each replicate draws the units (e.g. test videos) with replacement,
    positives and negatives apart so that every draw keeps both classes in their numbers; an item counts as
    often as its unit was drawn."""
    ids, item_unit = np.unique(np.asarray(units), return_inverse=True)
    unit_label = np.zeros(len(ids), dtype=int)
    unit_label[item_unit] = np.asarray(labels).astype(int)
    counts = np.zeros((replicates, len(ids)))
    for cls in (0, 1):
        members = np.flatnonzero(unit_label == cls)
        draws = rng.integers(0, len(members), size=(replicates, len(members)))
        np.add.at(counts, (np.arange(replicates)[:, None], members[draws]), 1)
    return counts[:, item_unit]


def bootstrap_contrast(groups, coefficients, labels, units, replicates=10_000, seed=0, paired=True,
                       resample=("seeds", "units"), chunk=1000):
    """Bootstrap replicates of sum over groups of coefficient x (the group's mean-over-seeds AUC), for groups
    of runs trained with several seeds and scored on one shared test set: e.g. a difference of two arms
    (coefficients 1, -1), or how that difference changed between two settings (1, -1, -1, 1). Each group is a
    (seeds, n_items) array over the same items (frames or videos) with their labels and the unit each belongs
    to. Each replicate draws the seeds with replacement (paired: the same seeds for every group; else apart)
    and, in the same replicate, the units (one draw for every run: they share the test set), and recomputes
    every run's AUC on it; so the spread covers both the training seeds and the test set's sampling. resample
    names what is drawn ("seeds", "units" or both). Returns the (replicates,) array."""
    groups = [np.atleast_2d(np.asarray(g, float)) for g in groups]
    if paired and len({len(g) for g in groups}) > 1:
        raise ValueError(f"{' against '.join(str(len(g)) for g in groups)} seeds: pairing needs the same seeds in "
                         "every arm")
    rng = np.random.default_rng(seed)
    out = np.empty(replicates)
    whole = np.ones((1, groups[0].shape[1]))  # the test set as it is: every run's AUC once
    for first in range(0, replicates, chunk):
        n = min(chunk, replicates - first)
        weights = _unit_draws(units, labels, n, rng) if "units" in resample else whole
        if "seeds" not in resample:
            picks = [np.broadcast_to(np.arange(len(g)), (n, len(g))) for g in groups]
        elif paired:
            picks = [rng.integers(0, len(groups[0]), size=(n, len(groups[0])))] * len(groups)
        else:
            picks = [rng.integers(0, len(g), size=(n, len(g))) for g in groups]
        rows = np.arange(n)[:, None]
        aucs = [np.broadcast_to(run_aucs(labels, g, weights), (n, len(g))) for g in groups]
        out[first:first + n] = sum(c * auc[rows, pick].mean(axis=1) for c, auc, pick in zip(coefficients, aucs, picks))
    return out


def bootstrap_difference(scores_a, scores_b, labels, units, **options):
    """bootstrap_contrast's replicates of mean-over-seeds AUC(a) - AUC(b) (options go to it: paired,
    resample, replicates, seed)."""
    return bootstrap_contrast([scores_a, scores_b], [1, -1], labels, units, **options)


def contrast_interval(groups, coefficients, labels, units, level=LEVEL, **options):
    """The estimate (the contrast of the groups' mean AUCs on the whole test set), the percentile interval and
    SD of bootstrap_contrast's replicates (options go to it), as plain floats."""
    groups = [np.atleast_2d(np.asarray(g, float)) for g in groups]
    estimate = sum(c * np.mean(run_aucs(labels, g)) for c, g in zip(coefficients, groups))
    replicates = bootstrap_contrast(groups, coefficients, labels, units, **options)
    low, high = np.percentile(replicates, [50 * (1 - level), 50 * (1 + level)])
    return {"estimate": float(estimate), "ci": [float(low), float(high)], "sd": float(replicates.std(ddof=1)),
            "replicates": len(replicates)}


def bootstrap_interval(scores_a, scores_b, labels, units, level=LEVEL, **options):
    """contrast_interval of AUC(a) - AUC(b)."""
    return contrast_interval([scores_a, scores_b], [1, -1], labels, units, level=level, **options)
