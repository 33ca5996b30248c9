"""The report's statistics: intervals of a median, and whether two groups' times differ by more
than their noise.

A difference is tested with a percentile bootstrap of the ratio of medians (each side resampled
with replacement, independently, RESAMPLES times, a fixed seed so the report is reproducible). It
is "within noise" when the 95% interval of the ratio contains 1. With one run on a side there is
no spread to resample: the difference is "untested", never a finding. Nothing here assumes normal
times (a busy machine gives long right tails), which is why this is a bootstrap and not a t-test.
"""
import math
import statistics

import numpy as np

RESAMPLES = 4000

# two-sided 95% Student t critical values by degrees of freedom (for the accuracy interval)
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
       20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(df):
    if df < 1:
        return math.nan
    keys = [k for k in sorted(T95) if k <= df]
    return T95[keys[-1]] if df <= 120 else 1.960


def olympic_mean(values):
    """MLPerf: drop the fastest and the slowest, average the rest (needs 5 or more)."""
    v = sorted(values)
    return statistics.fmean(v[1:-1]) if len(v) >= 5 else math.nan


def mean_ci95(values):
    """Half-width of the 95% t-interval of the mean (nan under 2 values)."""
    return t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def diff_ci95(a, b):
    """Half-width of the 95% interval of mean(b) - mean(a): Welch's with two or more values a side. With
    one value on a side the other side's spread stands for both (the same measure on the same task);
    nan when neither side has two."""
    na, nb = len(a), len(b)
    if min(na, nb) < 1 or max(na, nb) < 2:
        return math.nan
    if min(na, nb) < 2:
        return t95(max(na, nb) - 1) * statistics.stdev(a if na > 1 else b) * math.sqrt(1 / na + 1 / nb)
    va, vb = statistics.variance(a) / na, statistics.variance(b) / nb
    if va + vb == 0:
        return 0.0
    return t95((va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))) * math.sqrt(va + vb)


def _boot_medians(values, rng):
    v = np.asarray(values, dtype=float)
    return np.median(v[rng.integers(0, len(v), size=(RESAMPLES, len(v)))], axis=1)


def median_ci95(values, seed=0):
    """(low, high) of a bootstrap 95% interval of the median; (nan, nan) under 2 values."""
    if len(values) < 2:
        return math.nan, math.nan
    m = _boot_medians(values, np.random.default_rng(seed))
    return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


def compare(a, b, seed=0):
    """Ratio of medians b / a with its bootstrap 95% interval and a verdict:
    'noise' (the interval holds 1), 'differs', or 'untested' (a side with fewer than 2 values)."""
    a, b = [float(x) for x in a], [float(x) for x in b]
    out = {"ratio": math.nan, "lo": math.nan, "hi": math.nan, "verdict": "untested", "n_a": len(a), "n_b": len(b)}
    if not a or not b or statistics.median(a) == 0:
        return out
    out["ratio"] = statistics.median(b) / statistics.median(a)
    if len(a) < 2 or len(b) < 2:
        return out
    rng = np.random.default_rng(seed)
    ma, mb = _boot_medians(a, rng), _boot_medians(b, rng)
    r = mb / np.where(ma == 0, np.nan, ma)
    out["lo"], out["hi"] = float(np.nanpercentile(r, 2.5)), float(np.nanpercentile(r, 97.5))
    out["verdict"] = "noise" if out["lo"] <= 1 <= out["hi"] else "differs"
    return out
