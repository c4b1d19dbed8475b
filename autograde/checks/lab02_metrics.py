"""Checks for Lab 02, efficiency metrics.

References come from PyTorch (layers built on the meta device for parameter
counts, FlopCounterMode for MACs, tensor byte sizes for storage) or from
efflib's profiler, which the tests prove exact against both. Formula questions
refuse tensor factories (so an answer cannot just build the layer and count)
and efflib's own counters.
"""

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from autograde.checks.api import (
    TORCH_REFERENCES,
    Withheld,
    call,
    call_may_raise,
    check,
    expect_answer,
    expect_int,
    expect_raises,
    fail,
    fmt_call,
    formula_watch,
    rng,
    watch,
)
from autograde.checks.models import MixedNet
from efflib import models
from efflib.profiler import profile

COUNTERS = ("profile", "model_size", "roofline")
# torch's counters: FlopCounterMode with its formula per op, and the profiler's with_flops
FLOP_COUNTERS = ("torch.utils.flop_counter", "torch.profiler", "torch.autograd.profiler")
# efflib's own counting rules: its MAC formula per op is conv_macs under another name
EFFLIB_COUNTING = ("efflib.macs", "efflib.leaf_ops", "efflib.profiler", "efflib.size",
                   "efflib.roofline")
# the clean room (judging.clean_room) has none of these
WITHHELD = Withheld(topics=COUNTERS, modules=EFFLIB_COUNTING)


def _formula(fn, case, *args, **kwargs):
    """Call a formula answer with tensor factories and efflib's counters refused."""
    with _blocked_counters():
        return call(fn, case, *args, **kwargs)


def _meta_params(layer: nn.Module) -> int:
    return sum(p.numel() for p in layer.parameters())


def _close(got, expected: float, case: str, rel: float = 1e-9, hint: str = "") -> None:
    expect_answer(got, expected, case, rel, hint)


# --- Q1. Parameters -----------------------------------------------------------------

@check
def check_linear_params(fn, hidden: bool = False) -> None:
    """linear_params(c_in, c_out, bias) equals nn.Linear's parameter count."""
    r = rng(hidden, "linear_params")
    cases = [(9216, 4096, True), (4096, 1000, False)]
    cases += [(r.randint(1, 5000), r.randint(1, 5000), r.random() < 0.5)
              for _ in range(20 if hidden else 3)]
    for ci, co, bias in cases:
        case = fmt_call("linear_params", ci, co, bias=bias)
        expected = _meta_params(nn.Linear(ci, co, bias=bias, device="meta"))
        expect_int(_formula(fn, case, ci, co, bias=bias), expected, case,
                   hint="A weight per (input, output) pair, plus one bias per output.")


@check
def check_conv_params(fn, hidden: bool = False) -> None:
    """conv_params(c_in, c_out, kernel, groups, bias) equals nn.Conv2d's count; bad groups raise."""
    r = rng(hidden, "conv_params")
    cases = [(3, 96, 11, 1, True), (96, 256, 5, 2, False), (32, 32, 3, 32, False),
             (64, 128, (1, 7), 1, True)]
    for _ in range(25 if hidden else 4):
        g = r.choice([1, 1, 2, 4, 8])
        ci, co = g * r.randint(1, 64), g * r.randint(1, 64)
        g = ci if r.random() < 0.2 and co % ci == 0 else g
        k = r.choice([1, 3, 5, 7, (r.randint(1, 7), r.randint(1, 7))])
        cases.append((ci, co, k, g, r.random() < 0.5))
    for ci, co, k, g, bias in cases:
        case = fmt_call("conv_params", ci, co, k, groups=g, bias=bias)
        expected = _meta_params(nn.Conv2d(ci, co, k, groups=g, bias=bias, device="meta"))
        expect_int(_formula(fn, case, ci, co, k, groups=g, bias=bias), expected, case,
                   hint="Each filter sees only c_in / groups input channels.")
    # groups must divide each side: c_in alone, then c_out alone, is wrong
    bad = [(6, 4, 3, 4), (8, 6, 3, 4)] if not hidden else [(10, 16, 3, 4), (12, 10, 1, 4),
                                                          (9, 12, 1, 2), (4, 6, 3, 4)]
    for ci, co, k, g in bad:
        case = fmt_call("conv_params", ci, co, k, groups=g)
        with _blocked_counters():
            expect_raises(fn, ValueError, case + " (groups must divide both channel counts)",
                          ci, co, k, groups=g)


@contextmanager
def _blocked_counters():
    with formula_watch(COUNTERS, modules=FLOP_COUNTERS + EFFLIB_COUNTING):
        yield


# --- Q2. Model size -----------------------------------------------------------------

@check
def check_model_size_bytes(fn, hidden: bool = False) -> None:
    """model_size_bytes(num_params, bits) is the storage in bytes, rounded up."""
    r = rng(hidden, "model_size")
    cases = [(61_100_840, 32), (61_100_840, 8), (3, 4), (25_557_032, 16)]
    cases += [(r.randint(1, 10**8), r.choice([1, 2, 3, 4, 5, 8, 16, 32]))
              for _ in range(20 if hidden else 3)]
    dtypes = {32: torch.float32, 16: torch.float16, 8: torch.int8}
    for n, bits in cases:
        case = fmt_call("model_size_bytes", n, bits)
        if bits in dtypes:  # what torch would allocate for n such values
            expected = torch.empty(n, dtype=dtypes[bits], device="meta").nbytes
        else:
            expected = -(-n * bits // 8)
        expect_int(_formula(fn, case, n, bits), expected, case,
                   hint="bits / 8 bytes per parameter; a partly used last byte still counts.")


@check
def check_alexnet_mb(value) -> None:
    """AlexNet (torchvision, 61,100,840 params) at 32 bits, in MB of 10^6 bytes."""
    _close(value, 61_100_840 * 4 / 1e6, "alexnet_fp32_mb", rel=1e-3,
           hint="61.1M parameters x 4 bytes, divided by 10^6, to within 0.1% (keep the "
                "decimals).")


# --- Q3. MACs -----------------------------------------------------------------------

def _flop_macs(op, *tensors, **kwargs) -> int:
    with FlopCounterMode(display=False) as counter:
        op(*tensors, **kwargs)
    return counter.get_total_flops() // 2


def _m(*shape):
    return torch.empty(*shape, device="meta")


@check
def check_linear_macs(fn, hidden: bool = False) -> None:
    """linear_macs(c_in, c_out, batch) equals FlopCounterMode's count / 2."""
    r = rng(hidden, "linear_macs")
    cases = [(9216, 4096, 1), (4096, 1000, 8)]
    cases += [(r.randint(1, 4096), r.randint(1, 4096), r.randint(1, 64))
              for _ in range(20 if hidden else 3)]
    for ci, co, n in cases:
        case = fmt_call("linear_macs", ci, co, batch=n)
        expected = _flop_macs(F.linear, _m(n, ci), _m(co, ci))
        expect_int(_formula(fn, case, ci, co, batch=n), expected, case,
                   hint="One MAC per weight per input sample; bias adds are not MACs.")


@check
def check_conv_macs(fn, hidden: bool = False) -> None:
    """conv_macs(c_in, c_out, kernel, h_out, w_out, groups, batch) equals FlopCounterMode / 2."""
    r = rng(hidden, "conv_macs")
    cases = [(3, 96, 11, 55, 55, 1, 1), (96, 256, 5, 27, 27, 2, 1), (32, 32, 3, 112, 112, 32, 2),
             (24, 48, (3, 1), 28, 14, 2, 2)]  # a rectangular kernel and output
    for _ in range(20 if hidden else 3):
        g = r.choice([1, 2, 4])
        k = r.choice([1, 3, 5, (1, 7), (7, 1)])
        cases.append((g * r.randint(1, 32), g * r.randint(1, 32), k, r.randint(1, 40),
                      r.randint(1, 40), g, r.randint(1, 4)))
    for ci, co, k, ho, wo, g, n in cases:
        kh, kw = (k, k) if isinstance(k, int) else k
        case = fmt_call("conv_macs", ci, co, k, ho, wo, groups=g, batch=n)
        # a stride-1, unpadded input of (h_out + kh - 1) gives exactly h_out outputs
        expected = _flop_macs(F.conv2d, _m(n, ci, ho + kh - 1, wo + kw - 1),
                              _m(co, ci // g, kh, kw), groups=g)
        expect_int(_formula(fn, case, ci, co, k, ho, wo, groups=g, batch=n), expected, case,
                   hint="Every output element is one filter's worth of MACs: (c_in/g) kh kw.")


# --- Q4. Activations ----------------------------------------------------------------

def _chain_cases(r, count):
    cases = [[(1, 3, 32, 32), (1, 16, 32, 32), (1, 16, 16, 16), (1, 10)]]
    for _ in range(count):
        shapes = [(1, r.randint(1, 8), r.randint(1, 32), r.randint(1, 32))]
        for _ in range(r.randint(1, 6)):
            shapes.append((1, r.randint(1, 64), r.randint(1, 32), r.randint(1, 32)))
        cases.append(shapes)
    return cases


class _Reshape(nn.Module):
    """A layer that produces a fresh tensor of a given shape, to profile a chain of shapes."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.new_ones(self.shape)  # one fresh tensor that reads x


def _chain_profile(shapes):
    chain = nn.Sequential(*(_Reshape(s) for s in shapes[1:]))
    return profile(chain, torch.zeros(shapes[0]))


@check
def check_activations(total_fn, peak_fn, hidden: bool = False) -> None:
    """total_activations and peak_activations agree with efflib.profile on a chain of layers."""
    r = rng(hidden, "activations")
    for shapes in _chain_cases(r, 12 if hidden else 3):
        ref = _chain_profile(shapes)
        case = f"shapes {shapes}"
        expect_int(_formula(total_fn, "total_activations(" + case + ")", list(shapes)),
                   ref.activations, "total_activations(" + case + ")",
                   hint="Add up the elements of the input and of every layer's output.")
        expect_int(_formula(peak_fn, "peak_activations(" + case + ")", list(shapes)),
                   ref.peak_activations, "peak_activations(" + case + ")",
                   hint="While a layer runs, its input and its output are both alive.")


# --- Q5. AlexNet table --------------------------------------------------------------

ALEXNET_LAYERS = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]


@check
def check_alexnet_table(fn) -> None:
    """alexnet_table() rows equal efflib.profile of the lecture AlexNet, layer by layer."""
    prof = profile(models.alexnet(variant="lecture").eval(), torch.zeros(1, 3, 224, 224))
    ref = [r for r in prof.rows if r.macs]
    with _blocked_counters():
        table = call(fn, "alexnet_table()")
    if not isinstance(table, list | tuple) or len(table) != len(ref):
        length = len(table) if hasattr(table, "__len__") else "?"
        fail(f"alexnet_table() should return a list of {len(ref)} rows (conv1..fc8), "
             f"got {type(table).__name__} of length {length}")
    for name, row, exp in zip(ALEXNET_LAYERS, table, ref, strict=True):
        if not isinstance(row, dict):
            fail(f"row {name} should be a dict with keys weights, macs, activations")
        for key, want in (("weights", exp.weights), ("macs", exp.macs),
                          ("activations", exp.activations)):
            if key not in row:
                fail(f"row {name} has no {key!r} entry")
            expect_answer(row[key], want, f"alexnet_table() {name} {key}",
                       hint="Activations are the layer's output elements (batch 1); "
                            "groups of 2 halve conv2, conv4 and conv5's weights.")


# --- Q6. FLOPs and FLOPS ------------------------------------------------------------

@check
def check_achieved_gflops(fn, hidden: bool = False) -> None:
    """achieved_gflops(macs, seconds) = 2 macs / seconds / 1e9."""
    r = rng(hidden, "gflops")
    cases = [(724_406_816, 0.013), (4_089_184_256, 0.032)]
    cases += [(r.randint(1, 10**11), r.uniform(1e-4, 2.0)) for _ in range(10 if hidden else 2)]
    for macs, sec in cases:
        case = fmt_call("achieved_gflops", macs, sec)
        _close(_formula(fn, case, macs, sec), 2 * macs / sec / 1e9, case, rel=1e-9,
               hint="A MAC is two floating-point operations; FLOPS is per second; G is 1e9.")


# --- Q7. A hook-based counter -------------------------------------------------------


def _module_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Reference: FlopCounterMode's per-module counts of the Conv2d and Linear leaves."""
    with FlopCounterMode(display=False) as counter:
        model(x)
    counts = counter.get_flop_counts()
    total = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            key = f"{type(model).__name__}.{name}" if name else type(model).__name__
            total += sum(counts.get(key, {}).values())
    return total // 2


@contextmanager
def _no_flop_counter():
    """FlopCounterMode refuses to start while the student's counter runs."""
    original = FlopCounterMode.__enter__

    def refuse(self):
        fail("your counter uses torch's FlopCounterMode; Q7 asks you to count with "
             "forward hooks on nn.Conv2d and nn.Linear yourself.")

    FlopCounterMode.__enter__ = refuse
    try:
        yield
    finally:
        FlopCounterMode.__enter__ = original


def _hook_watch():
    """Q7 counts with hooks: torch's and efflib's counters and formulas are refused."""
    return watch(topics=COUNTERS, modules=FLOP_COUNTERS + TORCH_REFERENCES + EFFLIB_COUNTING,
                 call_only=TORCH_REFERENCES)


@check
def check_hook_counter(fn, hidden: bool = False) -> None:
    """count_macs_with_hooks(model, x) counts Conv2d and Linear MACs via hooks, nothing else."""
    r = rng(hidden, "hooks")
    cases = [(8, 3, 1, 10, 12, 2)] + [
        (4 * r.randint(1, 6), r.choice([1, 3, 5]), r.choice([1, 2, 4]), r.randint(2, 12),
         r.randint(4, 20), r.randint(1, 3)) for _ in range(6 if hidden else 2)]
    for c, k, g, classes, size, n in cases:
        model = MixedNet(c, k, g, classes, seed=c * 1000 + size).eval()
        x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            expected = _module_macs(model, x)
        case = (f"count_macs_with_hooks on {c} channels, {k}x{k} conv1, groups={g}, "
                f"input {tuple(x.shape)}")
        before = {h for m in model.modules() for h in m._forward_hooks}
        with torch.no_grad(), _no_flop_counter(), _hook_watch():
            got = call(fn, case, model, x)
        expect_int(got, expected, case,
                   hint="Count only nn.Conv2d and nn.Linear modules (the functional @ is "
                        "invisible to hooks by design), bias excluded, divided by groups.")
        left = {h for m in model.modules() for h in m._forward_hooks} - before
        if left:
            fail(f"{case}: {len(left)} forward hooks are still registered afterwards; "
                 "remove them (keep the handles and call .remove()).")
    _expect_no_hooks_after_an_error(fn, r)


def _expect_no_hooks_after_an_error(fn, r) -> None:
    """A model that raises (conv1 takes 3 channels, the input has 4) leaves no hook behind:
    whether the function passes the error on or not, its hooks must come off."""
    model = MixedNet(4 * r.randint(1, 4), 3, 1, 10, seed=r.randrange(1000)).eval()
    x = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(0))
    case = "count_macs_with_hooks on an input the model rejects (4 channels, conv1 takes 3)"
    with torch.no_grad(), _no_flop_counter(), _hook_watch():
        call_may_raise(fn, case, model, x)
    left = sum(len(m._forward_hooks) for m in model.modules())
    if left:
        fail(f"{case}: {left} forward hooks are still registered after the model raised; "
             "remove them in a `finally:` block, so that they come off whatever happens.")


# --- Q8. Latency and throughput -----------------------------------------------------

@check
def check_throughput(fn, design2_batch) -> None:
    """throughput(batch, latency) = batch / latency; design 2 processes 4 images at once."""
    for b, lat in [(1, 0.05), (4, 0.1), (16, 0.37), (3, 0.002)]:
        case = fmt_call("throughput", b, lat)
        _close(_formula(fn, case, b, lat), b / lat, case, hint="Inputs per second.")
    expect_answer(design2_batch, 4, "design2_batch",
               hint="40 images/s with each image taking 100 ms: how many are in flight at once?")


# --- Q9. Roofline -------------------------------------------------------------------

@check
def check_roofline(intensity_fn, time_fn, hidden: bool = False) -> None:
    """arithmetic_intensity and roofline_seconds on random layers and machines."""
    r = rng(hidden, "roofline")
    for _ in range(15 if hidden else 4):
        macs, nbytes = r.randint(1, 10**10), r.randint(1, 10**9)
        peak, bw = r.uniform(1e9, 1e12), r.uniform(1e9, 1e11)
        case = fmt_call("arithmetic_intensity", macs, nbytes)
        _close(_formula(intensity_fn, case, macs, nbytes), 2 * macs / nbytes, case,
               hint="FLOPs (2 per MAC) per byte moved.")
        case = fmt_call("roofline_seconds", 2 * macs, nbytes, peak, bw)
        _close(_formula(time_fn, case, 2 * macs, nbytes, peak, bw),
               max(2 * macs / peak, nbytes / bw), case,
               hint="The slower of computing and moving data sets the time.")


# --- Q10. Energy --------------------------------------------------------------------

PJ = {"fmult": 3.7, "fadd": 0.9, "sram": 5.0, "dram": 640.0}  # Horowitz, ISSCC 2014, 45 nm


@check
def check_energy(fn, hidden: bool = False) -> None:
    """energy_pj(macs, dram_words, sram_words) with Horowitz's 45 nm table."""
    r = rng(hidden, "energy")
    cases = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (724_406_816, 60_954_656, 0)]
    cases += [(r.randint(0, 10**9), r.randint(0, 10**8), r.randint(0, 10**8))
              for _ in range(10 if hidden else 2)]
    for macs, dram, sram in cases:
        case = fmt_call("energy_pj", macs, dram, sram)
        want = macs * (PJ["fmult"] + PJ["fadd"]) + dram * PJ["dram"] + sram * PJ["sram"]
        _close(_formula(fn, case, macs, dram, sram), want, case, rel=1e-9,
               hint="A float MAC is a multiply and an add; each 32-bit word read costs once.")
