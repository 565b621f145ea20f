"""Statistics over seeds: a variant's mean with its Student-t interval, the paired difference of two variants
run with the same seeds (interval and two-sided paired t-test), and the one-sided tests of that difference
against a margin (no loss, and equivalence by TOST). Every function takes plain lists of numbers and returns
plain floats (or None where one value cannot say it), so the results go straight into JSON or CSV."""
import math
import statistics

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
