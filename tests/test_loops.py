"""efflib.loops: the seven loops in Python and numba against torch's convolution."""

import itertools
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from efflib import loops


@pytest.mark.parametrize("seed", range(6))
def test_direct_loops_equal_conv2d(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, m = 1 + seed % 2, 1 + seed % 3, 2 + seed % 2
    k, stride, padding, dilation = [1, 3, 2][seed % 3], 1 + seed % 2, seed % 3, 1 + seed // 4
    x, w, b = torch.randn(n, c, 7, 6, generator=g), torch.randn(m, c, k, k, generator=g), \
        torch.randn(m, generator=g)
    got = loops.conv2d_direct(x, w, b, stride, padding, dilation)
    ref = F.conv2d(x, w, b, stride, padding, dilation)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("order", ["mcrspq", "pqmcrs", "qpsrcm", "cmpqrs"])
def test_numba_kernels_in_any_order_equal_conv2d(order):
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(4, 9, 8, generator=g), torch.randn(5, 4, 3, 3, generator=g)
    ref = F.conv2d(x[None], w, padding=1)[0].numpy()
    out = np.zeros(ref.shape, np.float32)
    loops.numba_conv(order)(loops.pad_chw(x.numpy(), 1), w.numpy(), out)
    assert np.allclose(out, ref, atol=1e-4)
    bounds = np.zeros(ref.shape, np.float32)
    loops.numba_conv_bounds(x.numpy(), w.numpy(), bounds, 1)
    assert np.allclose(bounds, ref, atol=1e-4)


def test_numba_kernels_are_compiled_before_their_first_call():
    kernel = loops.numba_conv("rspqmc")
    assert len(kernel.signatures) == 1  # a first call that is timed runs the loops only
    with pytest.raises(TypeError):  # only the float32 arrays it was compiled for
        kernel(np.zeros((1, 3, 3)), np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 1)))


def test_every_order_is_a_permutation_of_the_six_loops():
    assert len({"".join(p) for p in itertools.permutations(loops.LOOPS)}) == 720
    with pytest.raises(ValueError, match="six loops"):
        loops.numba_conv("mcrsp")


def test_timing_runs_on_a_budget_not_a_count(clock):
    calls = []
    start = time.perf_counter()
    median = loops.timed(lambda: (calls.append(1), time.sleep(1 / 64)), budget_s=1 / 8)
    assert len(calls) == 8 and time.perf_counter() - start == 1 / 8 and median == 1 / 64
    slow = []
    loops.timed(lambda: (slow.append(1), time.sleep(0.05)), budget_s=0.01, min_runs=2)
    assert len(slow) == 2  # a slow call stops at the minimum
    assert loops.conv_flop(64, 64, 3, 3, 56, 56) == 2 * 64 * 64 * 9 * 56 * 56


def test_timed_together_takes_turns_so_a_passing_load_slows_all_alike(clock):
    calls = []

    def sleeper(name, ms):
        def fn():
            load = 6 if (len(calls) // 3) % 2 else 1  # heavy every other round of three
            calls.append(name)
            time.sleep(ms * load / 1e3)
        return fn

    medians = loops.timed_together({"a": sleeper("a", 2), "b": sleeper("b", 4),
                                    "c": sleeper("c", 8)}, budget_s=0.0, min_rounds=4,
                                   warm_below_s=0.0)
    assert calls == list("abc" "bca" "cab" "abc")  # every one once a round, the turn moving
    # each saw two light and two heavy turns: the median of (1, 6, 1, 6) x its own time
    assert medians == pytest.approx({"a": 0.007, "b": 0.014, "c": 0.028})
    with pytest.raises(ValueError, match="at least one function"):
        loops.timed_together({})


def test_timed_alone_a_passing_load_distorts_the_ratio(clock):
    """The counterpart: timed one after another, the heavy rounds fall on one function."""
    calls = []

    def sleeper(ms):
        def fn():
            time.sleep(ms * (6 if len(calls) >= 4 else 1) / 1e3)
            calls.append(ms)
        return fn

    a = loops.timed(sleeper(2), budget_s=0.0, min_runs=4)
    b = loops.timed(sleeper(4), budget_s=0.0, min_runs=4)
    assert b / a == pytest.approx(12)  # the load arrived between them, not in proportion


def test_a_quick_call_is_warmed_before_its_timed_turn_and_a_slow_one_is_not(clock):
    calls = []
    loops.timed_together({"quick": lambda: calls.append("q"),
                          "slow": lambda: (calls.append("s"), time.sleep(0.03))},
                         budget_s=0.0, min_rounds=3, warm_below_s=0.02)
    # after the first round, a turn of the quick one is two calls, of the slow one one
    assert calls == list("qs" "sqq" "qqs")


def test_bad_sizes_are_named():
    """conv_flop of a negative size used to return a negative count."""
    with pytest.raises(ValueError, match="conv_flop: c must be at least 1, got -1"):
        loops.conv_flop(-1, 1, 3, 3, 4, 4)
    with pytest.raises(TypeError, match="conv_flop: p must be an int"):
        loops.conv_flop(1, 1, 3, 3, 4.5, 4)
    assert loops.conv_flop(np.int64(2), 1, 1, 1, 1, 1) == 4
    with pytest.raises(ValueError, match="pad_chw: padding must be at least 0"):
        loops.pad_chw(np.zeros((1, 2, 2)), -1)
    with pytest.raises(ValueError, match=r"pad_chw: x must be a \(C, H, W\) array"):
        loops.pad_chw(np.zeros((2, 2)), 1)
