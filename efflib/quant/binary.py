"""Binary and ternary weights with a per-output-channel scale.

Binary: w ~ alpha * sign(w) with alpha = mean |w| per output channel (BinaryConnect,
Courbariaux et al., NeurIPS 2015, https://arxiv.org/abs/1511.00363; the scale from
XNOR-Net, Rastegari et al., ECCV 2016, https://arxiv.org/abs/1603.05279).
Ternary: w ~ alpha * t with t in {-1, 0, +1}, threshold delta = 0.7 * mean |w|, and
alpha the mean |w| of the weights above it (TWN, Li et al., 2016,
https://arxiv.org/abs/1605.04711).
"""

import torch

from efflib import inputs
from efflib.graded import reference


def _per_channel_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first, shaped to broadcast: (c_out, 1, 1, ...)."""
    dims = tuple(range(1, x.dim()))
    return x.mean(dim=dims, keepdim=True) if dims else x


@reference("binary_weights")
def binarize(w: torch.Tensor) -> torch.Tensor:
    """alpha * sign(w) per output channel; sign(0) is +1, so every weight is +-alpha."""
    w = inputs.finite(w, "w", "binarize", empty=False).detach()
    alpha = _per_channel_mean(w.abs())
    return torch.where(w >= 0, alpha, -alpha)


@reference("binary_weights")
def ternarize(w: torch.Tensor, ratio: float = 0.7) -> torch.Tensor:
    """alpha * {-1, 0, +1} per output channel, zeroing |w| <= ratio * mean |w|."""
    w = inputs.finite(w, "w", "ternarize", empty=False).detach()
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio < 1e6:
        raise ValueError(f"ternarize: ratio must be a non-negative number, got {ratio!r}")
    delta = ratio * _per_channel_mean(w.abs())
    keep = w.abs() > delta
    dims = tuple(range(1, w.dim()))
    kept = (w.abs() * keep).sum(dim=dims, keepdim=True) if dims else w.abs() * keep
    n = keep.sum(dim=dims, keepdim=True) if dims else keep.to(w.dtype)
    alpha = kept / n.clamp(min=1)
    return torch.sign(w) * keep * alpha
