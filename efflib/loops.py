"""Convolution as loops: the seven loops of N C H W / R S M P Q U, in Python and compiled.

References for Lab 06 and its benchmark: a pure-Python direct convolution that
skips out-of-range inputs with a bounds check (as the lecture notes' C code
does) instead of padding a copy; numba kernels over a pre-padded input in any
loop order, and one that keeps the bounds check inside the inner loop; and a
timer that runs on a time budget rather than a fixed repeat count, alone or in
rounds beside others.
"""

import itertools
import statistics
import time
from collections.abc import Callable, Mapping

import numba
import numpy as np
import torch

from efflib import guarded, inputs
from efflib.graded import reference
from efflib.latency import time_in_turns


@reference("conv_loops")
def conv2d_direct(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None,
                  stride: int = 1, padding: int = 0, dilation: int = 1) -> torch.Tensor:
    """(N, C, H, W) * (M, C, R, S) -> (N, M, P, Q) by the seven loops, zero padding by a
    bounds check."""
    n_, c_, h_, w_ = x.shape
    m_, _, r_, s_ = w.shape
    p_ = (h_ + 2 * padding - dilation * (r_ - 1) - 1) // stride + 1
    q_ = (w_ + 2 * padding - dilation * (s_ - 1) - 1) // stride + 1
    xl, wl = x.tolist(), w.tolist()
    bl = b.tolist() if b is not None else [0.0] * m_
    out = [[[[0.0] * q_ for _ in range(p_)] for _ in range(m_)] for _ in range(n_)]
    for n, m, p, q in itertools.product(range(n_), range(m_), range(p_), range(q_)):
        acc = bl[m]
        for c, r, s in itertools.product(range(c_), range(r_), range(s_)):
            h = p * stride + r * dilation - padding
            v = q * stride + s * dilation - padding
            if 0 <= h < h_ and 0 <= v < w_:
                acc += xl[n][c][h][v] * wl[m][c][r][s]
        out[n][m][p][q] = acc
    return torch.tensor(out, dtype=x.dtype).reshape(n_, m_, p_, q_)


LOOPS = "mcrspq"  # output channel, input channel, kernel row, kernel column, output row, col
_KERNELS: dict[str, Callable] = {}
_SIGNATURE = "void(float32[:, :, ::1], float32[:, :, :, ::1], float32[:, :, ::1])"  # C order


def _nest(order: str, body: str) -> str:
    bounds = {"m": "M", "c": "C", "r": "R", "s": "S", "p": "P", "q": "Q"}
    lines = [" " * 4 * (i + 1) + f"for {v} in range({bounds[v]}):" for i, v in enumerate(order)]
    return "\n".join(lines + [" " * 4 * (len(order) + 1) + body])


@reference("conv_loops")  # Lab 06 Q3 asks for a compiled kernel of the student's own
def numba_conv(order: str = "mcrspq") -> Callable:
    """A stride-1 convolution of a pre-padded (C, H+2p, W+2p) float32 input into a zeroed
    (M, P, Q) output, its six loops nested in `order` (outermost first), compiled here for
    C-contiguous float32 arrays (so a first call times the loops, not the compiler)."""
    if sorted(order) != sorted(LOOPS):
        raise ValueError(f"order must arrange the six loops {LOOPS!r}, got {order!r}")
    if order not in _KERNELS:
        source = (
            "def kernel(xp, w, out):\n"
            "    M, C, R, S = w.shape\n"
            "    P, Q = out.shape[1], out.shape[2]\n"
            + _nest(order, "out[m, p, q] += w[m, c, r, s] * xp[c, p + r, q + s]") + "\n")
        scope: dict = {}
        exec(compile(source, f"<numba_conv {order}>", "exec"), scope)  # noqa: S102 - ours
        _KERNELS[order] = numba.njit(_SIGNATURE, cache=False)(scope["kernel"])  # compiled now
    return _KERNELS[order]


def _conv_bounds(x, w, out, padding):
    """The same convolution on the unpadded input, the bounds check in the inner loop."""
    M, C, R, S = w.shape
    H, W = x.shape[1], x.shape[2]
    P, Q = out.shape[1], out.shape[2]
    for m in range(M):
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    for p in range(P):
                        h = p + r - padding
                        if h < 0 or h >= H:
                            continue
                        for q in range(Q):
                            v = q + s - padding
                            if v >= 0 and v < W:
                                out[m, p, q] += w[m, c, r, s] * x[c, h, v]


numba_conv_bounds = reference("conv_loops")(numba.njit(cache=False)(_conv_bounds))


def pad_chw(x: np.ndarray, padding: int) -> np.ndarray:
    """A zero-padded copy of a (C, H, W) array."""
    inputs.count(padding, "padding", "pad_chw", minimum=0)
    if getattr(x, "ndim", None) != 3:
        raise ValueError(f"pad_chw: x must be a (C, H, W) array, got shape "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    return np.pad(x, ((0, 0), (padding, padding), (padding, padding)))


def timed(fn: Callable[[], object], budget_s: float = 0.5, min_runs: int = 3,
          max_runs: int = 200) -> float:
    """Median seconds of fn() over as many runs as fit in `budget_s` (at least `min_runs`):
    a busy machine shortens the sample, never lengthens the wait. The time a guarded C
    call spends outside the C function (its child process, efflib.guarded) is left out."""
    times, start = [], time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s
                                    and len(times) < max_runs):
        t, guard = time.perf_counter(), guarded.overhead()
        fn()
        times.append(time.perf_counter() - t - (guarded.overhead() - guard))
    return statistics.median(times)


def timed_together(fns: Mapping[str, Callable[[], object]], budget_s: float = 1.0,
                   min_rounds: int = 3, max_rounds: int = 200,
                   warm_below_s: float = 0.05) -> dict[str, float]:
    """Median seconds of each fn() timed in turns (efflib.latency.time_in_turns: a round
    calls every fn once, a quick one warmed first), so a load that comes and goes slows
    them all alike and their ratios hold on a busy machine; rounds as timed() counts runs
    (`budget_s` for all of them), the guarded C calls' time outside the C left out."""
    if not fns:
        raise ValueError("timed_together: give at least one function to time")
    times = time_in_turns(fns, min_rounds, max_rounds, budget_s, warm_below_s,
                          excluded=guarded.overhead)
    return {name: statistics.median(ts) for name, ts in times.items()}


def conv_flop(c: int, m: int, r: int, s: int, p: int, q: int, n: int = 1) -> int:
    """FLOP of a convolution: 2 per multiply-accumulate."""
    for name, value in zip("cmrspqn", (c, m, r, s, p, q, n), strict=True):
        inputs.count(value, name, "conv_flop")
    return 2 * n * m * c * r * s * p * q
