"""efflib.quant.calibration against a plain-loop reading of the rule and SciPy's KL."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from efflib.quant.calibration import kl_divergences


def kl_by_loops(hist: np.ndarray, levels: int, i: int) -> float:
    """The module docstring's rule, bin by bin; SciPy's entropy(p, q) is KL(p || q)."""
    p = hist[:i].astype(float).copy()
    p[-1] += hist[i:].sum()
    q = np.zeros(i)
    for j in range(levels):
        lo, hi = j * i // levels, (j + 1) * i // levels
        full = [k for k in range(lo, hi) if hist[k] > 0]
        for k in full:
            q[k] = hist[lo:hi].sum() / len(full)
    if np.any((p > 0) & (q == 0)):
        return math.inf
    return float(entropy(p, q))


@pytest.mark.parametrize("seed", range(6))
def test_every_cut_matches_the_rule_read_bin_by_bin(seed):
    r = np.random.default_rng(seed)
    x = np.abs(r.laplace(size=5000)) if seed % 2 else np.abs(r.normal(size=5000))
    if seed >= 4:
        x = np.round(x * 3) / 3  # gaps: empty bins inside the range
    bins, levels = int(r.integers(40, 120)), int(r.integers(4, 17))
    hist, _ = np.histogram(x, bins=bins, range=(0, x.max()))
    got = kl_divergences(torch.tensor(hist), levels)
    assert torch.isinf(got[:levels]).all()
    for i in range(levels, bins + 1):
        want = kl_by_loops(hist, levels, i)
        assert (math.isinf(want) and math.isinf(got[i])) or \
            got[i].item() == pytest.approx(want, rel=1e-9, abs=1e-12), i


def test_as_many_bins_as_levels_loses_nothing():
    hist = torch.tensor([3.0, 0.0, 5.0, 1.0])
    assert kl_divergences(hist, 4)[4] == 0


def entropy_bins(hist: torch.Tensor, levels: int) -> int:
    return int(torch.argmin(kl_divergences(hist, levels)))


def test_rare_outliers_are_clipped_and_a_uniform_range_is_not():
    r = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20000, generator=r).abs(), 10 + 30 * torch.rand(20, generator=r)])
    assert entropy_bins(torch.histc(x, 512, 0, float(x.max())), 32) < 512 // 4  # 1 in 1,000
    flat = torch.rand(20000, generator=r)
    assert entropy_bins(torch.histc(flat, 256, 0, 1), 16) >= 240


@pytest.mark.parametrize("bad", [torch.zeros(8), torch.tensor([1.0, -1.0]), torch.ones(2, 2),
                                 torch.tensor([1.0, math.nan])])
def test_a_histogram_that_is_not_one_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="hist"):
        kl_divergences(bad, 1)


def test_levels_outside_the_histogram_are_refused():
    with pytest.raises(ValueError, match="levels must be an int from 1 to len"):
        kl_divergences(torch.ones(8), 9)
