"""Activation calibration: where to clip a tensor's range before it is put on a grid.

Min/max keeps every value and spends the grid on rare outliers; a percentile clips a
fixed share of the tail; entropy calibration (TensorRT's, Migacz, "8-bit Inference
with TensorRT", GTC 2017) picks the clipping point whose quantized histogram loses
the least information, measured as KL(P || Q):

- the histogram of the values (`bins` equal bins from 0 to the largest) is cut after
  its first i bins, for every i from `levels` to `bins`; P is the first i bins with
  everything beyond bin i added to the last kept bin (the clipped values land there);
- Q puts those i bins on `levels` levels: level j covers bins [floor(j i / levels),
  floor((j + 1) i / levels)), and its total is spread evenly over the level's non-empty
  bins (an empty bin stays empty);
- a cut where P has mass in a bin Q leaves empty has KL = inf; ties go to the smaller i.
"""

import math

import torch

from efflib import inputs
from efflib.graded import reference


def _histogram(hist, levels: int) -> torch.Tensor:
    fn = "kl_divergences"
    h = inputs.finite(torch.as_tensor(hist), "hist", fn, empty=False).detach()
    if h.dim() != 1 or bool((h < 0).any()) or float(h.sum()) <= 0:
        raise ValueError(f"{fn}: hist must be a 1-D tensor of counts >= 0, not all zero")
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= len(h):
        raise ValueError(f"{fn}: levels must be an int from 1 to len(hist) = {len(h)}, "
                         f"got {levels!r}")
    return h.double().cpu()


@reference("calibration")  # its argmin is Lab 05 Q11's answer (entropy_bins)
def kl_divergences(hist: torch.Tensor, levels: int) -> torch.Tensor:
    """KL(P || Q) of keeping the first i bins, at index i (inf below `levels`)."""
    h = _histogram(hist, levels)
    n = len(h)
    out = torch.full((n + 1,), math.inf, dtype=torch.float64)
    beyond = torch.cat([h.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=h.dtype)])
    for i in range(levels, n + 1):
        p = h[:i].clone()                                             # (i,)
        p[-1] += beyond[i]
        if float(p.sum()) <= 0:
            continue
        edges = torch.tensor([j * i // levels for j in range(1, levels)])
        level = torch.bucketize(torch.arange(i), edges, right=True)   # (i,) level of each bin
        full = (h[:i] > 0).double()
        totals = torch.zeros(levels, dtype=h.dtype).index_add_(0, level, h[:i])
        counts = torch.zeros(levels, dtype=h.dtype).index_add_(0, level, full)
        q = full * (totals / counts.clamp(min=1))[level]
        mass = p > 0
        if bool((q[mass] <= 0).any()):
            continue
        p, q = p / p.sum(), q / q.sum()
        out[i] = float((p[mass] * (p[mass] / q[mass]).log()).sum())
    return out

