"""Checks for Lab 05, quantization.

References are PyTorch's own (torch.finfo, torch.iinfo, observers, fake-quantize)
or efflib.quant, which tests/test_quant_*.py hold against PyTorch and
scikit-learn. Answers that call torch's quantize ops or efflib's copy of the
question are refused.
"""

import math

import torch

from autograde.checks.api import (
    Withheld,
    as_float,
    as_int,
    as_plain_tensor,
    call,
    call_traced,
    check,
    compared,
    expect_close,
    expect_int,
    fail,
    fmt_call,
    in_hidden_case,
    rng,
    torch_gen,
    watch,
)
from efflib.quant import huffman, int8_cases
from efflib.quant.binary import binarize, ternarize
from efflib.quant.calibration import kl_divergences
from efflib.quant.integer import QParams, QuantizedLayer, quantize_multiplier
from efflib.quant.kmeans import centroid_grad, kmeans
from efflib.quant.linear import QuantSpec, qparams, quantization_error, quantize
from efflib.quant.pipeline import compress

QUANT_OPS = ("quantize_per_tensor", "quantize_per_channel", "quantize_per_tensor_dynamic",
             "fake_quantize_per_tensor_affine", "fake_quantize_per_channel_affine",
             "_fake_quantize_learnable_per_tensor_affine",
             "_fake_quantize_learnable_per_channel_affine", "fused_moving_avg_obs_fake_quant",
             "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams",
             "quantized_batch_norm", "dequantize", "int_repr")
TOPICS = ("linear_quantization", "fake_quantization", "kmeans", "huffman", "binary_weights",
          "requantization", "deep_compression", "model_size", "batchnorm_folding",
          "calibration")
# torch's batch norm computes bn(layer(x)) for any weights: the fold would be read off it
NORM_OPS = ("batch_norm", "native_batch_norm", "_native_batch_norm_legit",
            "_native_batch_norm_legit_no_training", "cudnn_batch_norm", "miopen_batch_norm",
            "instance_norm", "group_norm", "layer_norm", "native_layer_norm")
FUSERS = ("torch.nn.utils.fusion", "torch.ao", "torch.fx")  # torch's own conv-bn fusion
WITHHELD = Withheld(topics=TOPICS)  # the clean room (judging.clean_room) has none of these


def _run(fn, case, *args, forbidden=QUANT_OPS):
    with watch(forbidden=forbidden, topics=TOPICS):
        return call(fn, case, *args)


def _tensor(got, case: str, shape: tuple | None = None) -> torch.Tensor:
    if isinstance(got, torch.Tensor) and got.is_quantized:
        fail(f"{case}: returned torch's quantized tensor; return the integers as a plain "
             "integer tensor instead.")
    t = as_plain_tensor(got, case)
    if shape is not None and tuple(t.shape) != tuple(shape):
        fail(f"{case}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    return t


def _integers(got, case: str, shape: tuple) -> torch.Tensor:
    t = _tensor(got, case, shape)
    if t.is_floating_point() or t.is_complex():
        if not bool((t == torch.round(t)).all()):
            fail(f"{case}: expected whole numbers, got fractions (did you round?)")
    return t.to(torch.int64)


# --- Q1. Number formats --------------------------------------------------------------

FLOATS = {torch.float32: (8, 23), torch.float16: (5, 10), torch.bfloat16: (8, 7)}
HIDDEN_FLOATS = {torch.float64: (11, 52), torch.float8_e5m2: (5, 2)}


def ieee_format(e: int, m: int) -> tuple[float, float, float]:
    """(largest finite, eps, smallest normal) by the IEEE rule: bias 2^(e-1) - 1, the
    all-ones exponent kept for inf and NaN (tests hold it against torch.finfo)."""
    bias = 2 ** (e - 1) - 1
    return ((2 - 2.0**-m) * 2.0 ** (2**e - 2 - bias), 2.0**-m, 2.0 ** (1 - bias))


@check
def check_float_format(fn, hidden: bool = False) -> None:
    """float_format(e, m) -> (largest, eps, smallest normal): torch.finfo where torch has the
    format, the IEEE rule for formats it has not (so torch.finfo alone is no answer)."""
    r = rng(hidden, "float_format")
    formats = {str(dtype).removeprefix("torch."): (e, m)
               for dtype, (e, m) in {**FLOATS, **(HIDDEN_FLOATS if hidden else {})}.items()}
    formats["an 8-bit IEEE-style float (torch has none)"] = (4, 3)
    for i in range(6 if hidden else 1):
        formats[f"a made-up format #{i + 1}"] = (r.randint(3, 11), r.randint(1, 40))
    for name, (e, m) in formats.items():
        case = fmt_call("float_format", e, m) + f"  # {name}"
        got = _run(fn, case, e, m)
        if not isinstance(got, tuple | list) or len(got) != 3:
            fail(f"{case}: should return three numbers (largest, eps, smallest normal)")
        dtype = getattr(torch, name, None)
        info = torch.finfo(dtype) if isinstance(dtype, torch.dtype) else None
        refs = (info.max, info.eps, info.tiny) if info is not None else ieee_format(e, m)
        for part, value, ref in zip(("largest", "eps", "smallest normal"), got, refs,
                                    strict=True):
            v = as_float(value, f"{case}: {part}")
            if not math.isclose(v, ref, rel_tol=1e-12):
                fail(f"{case}: {part} is wrong ({v:.6g}{compared(v, ref, '.6g')}). Count the "
                     "exponent's bias and the largest exponent left once all-ones is kept "
                     "for inf and NaN.")


@check
def check_int_range(fn, hidden: bool = False) -> None:
    """int_range(bits, signed) -> (qmin, qmax), equal to torch.iinfo where torch has the type."""
    r = rng(hidden, "int_range")
    cases = [(8, True), (8, False), (16, True), (1, False)]
    cases += [(r.randint(2, 16), r.random() < 0.5) for _ in range(8 if hidden else 2)]
    for bits, signed in cases:
        case = fmt_call("int_range", bits, signed)
        got = _run(fn, case, bits, signed)
        if not isinstance(got, tuple | list) or len(got) != 2:
            fail(f"{case}: should return (qmin, qmax)")
        spec = QuantSpec(bits, signed)
        expect_int(got[0], spec.qmin, f"{case}: qmin")
        expect_int(got[1], spec.qmax, f"{case}: qmax",
                   hint="A b-bit grid holds 2^b values.")
    expect_int(torch.iinfo(torch.int8).min, QuantSpec(8).qmin, "torch.iinfo(int8).min")


# --- Q2. Linear quantization ------------------------------------------------------------

def _data(r: torch.Generator, shape, shift: float = 0.0, sign: int = 0) -> torch.Tensor:
    """Values around `shift`, a quarter of them exact halves on a 1/8 grid; with `sign`,
    all of one sign (every value positive, or every value negative)."""
    x = torch.randn(shape, generator=r) * 2 + shift
    x.view(-1)[: x.numel() // 4] = (torch.randint(-40, 40, (x.numel() // 4,), generator=r)
                                    + 0.5) / 8
    return sign * (x.abs() + 0.25) if sign else x


@check
def check_scale_zero_point(fn, hidden: bool = False) -> None:
    """scale_zero_point(x, bits, signed, symmetric) -> (scale, zero point) as torch's observers."""
    r = rng(hidden, "scale_zp")
    cases = [(8, False, False, 1.0, 0), (8, True, True, 0.0, 0), (4, True, False, -3.0, 0),
             (8, False, True, 0.5, 0), (2, True, True, 0.0, 0),
             # every value of one sign: the range must still be widened to hold 0
             (8, False, False, 0.0, 1), (8, True, False, 0.0, -1), (4, False, False, 0.0, -1)]
    cases += [(r.randint(2, 16), r.random() < 0.5, r.random() < 0.5, r.uniform(-3, 3),
               r.choice([0, 0, 1, -1])) for _ in range(10 if hidden else 2)]
    for bits, signed, symmetric, shift, sign in cases:
        x = _data(torch_gen(r), (r.randint(5, 40),), shift, sign)
        case = fmt_call("scale_zero_point", x, bits, signed, symmetric)
        got = _run(fn, case, x.clone(), bits, signed, symmetric)
        if not isinstance(got, tuple | list) or len(got) != 2:
            fail(f"{case}: should return (scale, zero_point)")
        scale, zp = qparams(x, QuantSpec(bits, signed, symmetric))
        s = as_float(got[0], f"{case}: scale")
        if not math.isclose(s, float(scale), rel_tol=1e-6):
            fail(f"{case}: the scale is wrong ({s:.6g}). Stretch the range, widened to include "
                 "0, over the grid's qmax - qmin steps (symmetric: over half of them).")
        expect_int(got[1], int(zp), f"{case}: zero point",
                   hint="Round -min/scale half to even, then clamp it into the grid.")


@check
def check_linear_quantize(fn, hidden: bool = False) -> None:
    """linear_quantize(x, scale, zp, bits, signed): clamp(round(x/s) + z), halves to even."""
    r = rng(hidden, "quantize")
    cases = [(8, False, 1.0), (8, True, 0.0), (4, False, -1.0), (3, True, 2.0)]
    cases += [(r.randint(2, 16), r.random() < 0.5, r.uniform(-3, 3))
              for _ in range(10 if hidden else 2)]
    for bits, signed, shift in cases:
        spec = QuantSpec(bits, signed)
        x = _data(torch_gen(r), (r.randint(2, 6), r.randint(5, 30)), shift)
        scale, zp = qparams(x[:, 1:], spec)  # some values fall outside: they must clamp
        _expect_quantized(fn, x, float(scale), int(zp), spec)
    for s in (0.5, 0.25, 0.125):  # a power-of-two scale: x / s lands exactly on halves
        spec = QuantSpec(r.choice([4, 8]), r.random() < 0.5)
        k = torch.arange(spec.qmin - 3, spec.qmax + 3, dtype=torch.float32)
        _expect_quantized(fn, (k + 0.5) * s, s, r.randint(spec.qmin, spec.qmax) // 2, spec)


def _expect_quantized(fn, x: torch.Tensor, s: float, z: int, spec: QuantSpec) -> None:
    """Judged on the operations the answer ran (judging.traces), replayed here: torch's
    quantizer called with the refusals switched off inside the answer leaves a constant
    that does not follow from new inputs."""
    case = fmt_call("linear_quantize", x, round(s, 6), z, spec.bits, spec.signed)
    with watch(forbidden=QUANT_OPS, topics=TOPICS):
        traced = call_traced(fn, case, x.clone(), s, z, spec.bits, spec.signed)
    got = _integers(traced.value, case, tuple(x.shape))
    by_reciprocal = quantize(x, s, z, spec)
    by_division = torch.clamp(torch.round(x / s).long() + z, spec.qmin, spec.qmax)
    wrong = (got != by_reciprocal) & (got != by_division)
    if bool(wrong.any()):
        i = tuple(int(v) for v in wrong.nonzero()[0])
        fail(f"{case}: at index {i}, x = {float(x[i]):.6g} gave {int(got[i])}"
             f"{compared(int(got[i]), int(by_reciprocal[i]))}. Round half to even "
             "(torch.round), add the zero point, then clamp to the grid.")
    traced.follows(lambda fresh: quantize(fresh, s, z, spec))


# --- Q3. Per-tensor and per-channel error ------------------------------------------------

@check
def check_quantization_mse(fn, hidden: bool = False) -> None:
    """quantization_mse(w, bits, per_channel): symmetric signed round trip, mean squared error."""
    r = rng(hidden, "mse")
    for _ in range(8 if hidden else 3):
        g = torch_gen(r)
        w = torch.randn(r.randint(2, 8), r.randint(1, 4), 3, 3, generator=g)
        w = w * torch.rand(w.shape[0], 1, 1, 1, generator=g) * 4  # channels of unequal range
        bits = r.randint(2, 8)
        for per_channel in (False, True):
            case = fmt_call("quantization_mse", w, bits, per_channel)
            got = as_float(_run(fn, case, w.clone(), bits, per_channel), case)
            ref = quantization_error(w, QuantSpec(bits, True, True), 0 if per_channel else None)
            if not math.isclose(got, ref, rel_tol=1e-3, abs_tol=1e-12):
                fail(f"{case}: got {got:.4g}{compared(got, ref, '.4g')}. Quantize symmetric "
                     "and signed, dequantize, then average the squared difference"
                     + (" (one scale per output channel, axis 0)." if per_channel else "."))


# --- Q4. K-means weight sharing ------------------------------------------------------------

@check
def check_kmeans_quantize(fn, hidden: bool = False) -> None:
    """kmeans_quantize(w, bits) -> (centroids, indices): a converged Lloyd clustering from an
    even (linear) start, as good as the reference's."""
    r = rng(hidden, "kmeans")
    cases = [((6, 4), 1), ((16, 8, 3, 3), 2), ((200,), 3)]
    cases += [((r.randint(10, 60), r.randint(1, 9)), r.randint(1, 4))
              for _ in range(6 if hidden else 1)]
    for shape, bits in cases:
        w = torch.randn(shape, generator=torch_gen(r))
        case = fmt_call("kmeans_quantize", w, bits)
        got = _run(fn, case, w.clone(), bits)
        if not isinstance(got, tuple | list) or len(got) != 2:
            fail(f"{case}: should return (centroids, indices)")
        k = 2**bits
        c = _tensor(got[0], f"{case}: centroids", (k,)).double()
        idx = _integers(got[1], f"{case}: indices", shape).reshape(-1)
        if int(idx.min()) < 0 or int(idx.max()) >= k:
            fail(f"{case}: indices must lie in [0, {k})")
        x = w.double().reshape(-1)
        dist = (x.reshape(-1, 1) - c.reshape(1, -1)).abs()
        if bool((dist[torch.arange(len(x)), idx] > dist.min(dim=1).values + 1e-9).any()):
            fail(f"{case}: some weights are not assigned to their nearest centroid: "
                 "iterate until the assignment stops changing.")
        for j in range(k):
            members = x[idx == j]
            if members.numel() and abs(float(members.mean()) - float(c[j])) > 1e-6:
                fail(f"{case}: centroid {j} is not the mean of its weights.")
        ref = kmeans(w, bits, refill_empty=False)  # the lab's rule: an empty cluster stays
        inertia = float(((x - c[idx]) ** 2).sum())
        if inertia > ref.inertia(w) * 1.01 + 1e-9:
            against = "" if in_hidden_case() else f" against {ref.inertia(w):.4g}"
            fail(f"{case}: the clustering is worse than it should be (a squared error of "
                 f"{inertia:.4g}{against}); start from centroids evenly spaced from min to "
                 "max.")
        if not torch.allclose(c.sort().values, ref.centroids.double().sort().values,
                              atol=1e-5, rtol=1e-5):
            fail(f"{case}: a converged clustering, but not the one Lloyd's algorithm reaches "
                 "from the even start: begin with 2^bits centroids evenly spaced from the "
                 "smallest weight to the largest (as Deep Compression does), and keep a "
                 "centroid that loses all its weights where it is.")


# --- Q5. Centroid fine-tuning -------------------------------------------------------------

@check
def check_centroid_gradient(fn, hidden: bool = False) -> None:
    """centroid_gradient(grad, indices, k): the sum of the gradients sharing each centroid."""
    r = rng(hidden, "centroid_grad")
    for _ in range(8 if hidden else 3):
        g = torch_gen(r)
        shape = (r.randint(1, 9), r.randint(1, 9))
        k = 2 ** r.randint(1, 4)
        grad = torch.randn(shape, generator=g)
        idx = torch.randint(0, k, shape, generator=g)
        case = fmt_call("centroid_gradient", grad, idx, k)
        got = _run(fn, case, grad.clone(), idx.clone(), k)
        expect_close(_tensor(got, case), centroid_grad(grad, idx, k), case, atol=1e-5,
                     hint="Every centroid gets the sum (not the mean) of its weights' "
                          "gradients, and unused centroids get 0.")


# --- Q6. Huffman coding and the whole pipeline ---------------------------------------------

@check
def check_huffman_lengths(fn, hidden: bool = False) -> None:
    """huffman_code_lengths(counts): an optimal prefix code's lengths (ties may go either way)."""
    r = rng(hidden, "huffman")
    cases = [{0: 45, 1: 13, 2: 12, 3: 16, 4: 9, 5: 5}, {3: 7}, {0: 1, 1: 1}, {0: 5, 1: 0, 2: 5}]
    cases += [{s: r.randint(0, 50) ** 2 for s in range(r.randint(2, 16))}
              for _ in range(10 if hidden else 2)]
    for counts in cases:
        case = fmt_call("huffman_code_lengths", counts)
        got = _run(fn, case, dict(counts))
        used = {s for s, c in counts.items() if c > 0}
        if not isinstance(got, dict) or {as_int(s, case) for s in got} != used:
            fail(f"{case}: return a dict with one code length per symbol that occurs "
                 f"({sorted(used)})")
        lengths = {as_int(s, case): as_int(n, f"{case}: length of {s}") for s, n in got.items()}
        if any(n < 1 for n in lengths.values()):
            fail(f"{case}: every code needs at least 1 bit")
        if sum(2.0 ** -n for n in lengths.values()) > 1 + 1e-12:
            fail(f"{case}: no prefix-free code has these lengths (their Kraft sum exceeds 1).")
        best = huffman.code_lengths(counts)
        total = sum(counts[s] * n for s, n in lengths.items())
        optimum = sum(counts[s] * n for s, n in best.items())
        if total != optimum:
            fail(f"{case}: these lengths cost {total} bits in all; an optimal code costs less. "
                 "Merge the two least frequent subtrees first, every time.")


@check
def check_pipeline_bytes(fn, hidden: bool = False) -> None:
    """pipeline_bytes(w, sparsity, bits): every byte Deep Compression stores for w."""
    r = rng(hidden, "pipeline")
    for _ in range(4 if hidden else 2):
        w = torch.randn(r.randint(4, 32), r.randint(4, 32), generator=torch_gen(r))
        sparsity, bits = round(r.uniform(0.3, 0.95), 2), r.randint(2, 5)
        case = fmt_call("pipeline_bytes", w, sparsity, bits)
        got = _run(fn, case, w.clone(), sparsity, bits, forbidden=())
        expected = compress(w, sparsity, bits, refill_empty=False)  # Q4's k-means rule
        expect_int(got, expected.stored_bytes(), case,
                   hint="Count the bitmask of positions, the Huffman-coded indices and their "
                        "table of code lengths, and 2^bits 32-bit centroids, then round up "
                        "to whole bytes once.")


# --- Q7. Binary and ternary weights -------------------------------------------------------

@check
def check_binary_ternary(binarize_fn, ternarize_fn, hidden: bool = False) -> None:
    """binarize(w) = alpha sign(w); ternarize(w): threshold 0.7 mean|w|, both per channel."""
    r = rng(hidden, "binary")
    shapes = [(4, 6), (8, 3, 3, 3)] + [(r.randint(1, 9), r.randint(1, 5), 3, 3)
                                       for _ in range(6 if hidden else 1)]
    for shape in shapes:
        w = torch.randn(shape, generator=torch_gen(r))
        w.view(-1)[0] = 0.0  # sign(0) must still give +alpha
        for name, fn, ref in (("binarize", binarize_fn, binarize),
                              ("ternarize", ternarize_fn, ternarize)):
            case = fmt_call(name, w)
            got = _tensor(_run(fn, case, w.clone()), case, shape)
            expect_close(got, ref(w), case, atol=1e-6, hint=(
                "One alpha per output channel (dimension 0): the mean |w| of that channel"
                + (", and +alpha where w is 0." if name == "binarize" else
                   " over the weights above the threshold 0.7 * mean |w|.")))


# --- Q8. Fake quantization and the straight-through estimator ------------------------------

@check
def check_fake_quant(forward_fn, backward_fn, hidden: bool = False) -> None:
    """fake_quant_forward equals torch's fake-quantize; fake_quant_backward passes the gradient
    where the value was not clamped and zeroes it where it was."""
    r = rng(hidden, "fake_quant")
    for _ in range(8 if hidden else 3):
        g = torch_gen(r)
        bits = r.randint(2, 8)
        qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        x = _data(g, (r.randint(2, 5), r.randint(3, 20)))
        scale, zp = round(r.uniform(0.01, 0.3), 4), r.randint(qmin, qmax)
        _expect_fake_quant(forward_fn, backward_fn, x, scale, zp, qmin, qmax, g)
    for scale, zp, qmin, qmax in ((0.25, 0, -8, 7), (0.125, -3, -32, 31)):
        # a power-of-two scale: x / s lands exactly on halves, which round to even
        x = (torch.arange(qmin - 3, qmax + 3, dtype=torch.float32) + 0.5) * scale
        _expect_fake_quant(forward_fn, backward_fn, x, scale, zp, qmin, qmax, torch_gen(r))


def _expect_fake_quant(forward_fn, backward_fn, x: torch.Tensor, scale: float, zp: int,
                       qmin: int, qmax: int, g: torch.Generator) -> None:
    """Both passes judged on the operations one call ran (judging.traces), replayed here on
    new inputs: torch's fake-quantize called with the refusals switched off inside the
    answer leaves a constant."""
    case = fmt_call("fake_quant_forward", x, scale, zp, qmin, qmax)
    with watch(forbidden=QUANT_OPS, topics=TOPICS):
        forward = call_traced(forward_fn, case, x.clone(), scale, zp, qmin, qmax)
    got = _tensor(forward.value, case, x.shape)
    ref = torch.fake_quantize_per_tensor_affine(x, scale, zp, qmin, qmax)
    by_division = (torch.clamp(torch.round(x / scale) + zp, qmin, qmax) - zp) * scale
    if bool(((got - ref).abs() > 1e-6).logical_and((got - by_division).abs() > 1e-6).any()):
        expect_close(got, ref, case, atol=1e-6,
                     hint="Quantize (round half to even, add z, clamp), then dequantize.")
    forward.follows(lambda fresh: torch.fake_quantize_per_tensor_affine(fresh, scale, zp, qmin,
                                                                        qmax))
    grad = torch.randn(x.shape, generator=g)
    case = fmt_call("fake_quant_backward", grad, x, scale, zp, qmin, qmax)
    with watch(forbidden=QUANT_OPS, topics=TOPICS):
        backward = call_traced(backward_fn, case, grad.clone(), x.clone(), scale, zp, qmin, qmax)
    got = _tensor(backward.value, case, x.shape)
    q = torch.round(x / scale) + zp
    alt = grad * ((q >= qmin) & (q <= qmax))
    want = _straight_through(grad, x, scale, zp, qmin, qmax)
    if bool(((got - want).abs() > 1e-6).logical_and((got - alt).abs() > 1e-6).any()):
        expect_close(got, want, case, atol=1e-6,
                     hint="Straight through where round(x/s) + z lies in [qmin, qmax], "
                          "0 where the forward pass clamped.")
    backward.follows(lambda g2, x2: _straight_through(g2, x2, scale, zp, qmin, qmax))


def _straight_through(grad: torch.Tensor, x: torch.Tensor, scale: float, zp: int, qmin: int,
                      qmax: int) -> torch.Tensor:
    """torch's own fake-quantize gradient for `grad` at `x`."""
    xr = x.clone().requires_grad_()
    torch.fake_quantize_per_tensor_affine(xr, scale, zp, qmin, qmax).backward(grad)
    return xr.grad


# --- Q9. Integer-only convolution -----------------------------------------------------------

@check
def check_quantized_multiplier(fn, hidden: bool = False) -> None:
    """quantized_multiplier(m) -> (m0, n): m ~ m0 2^-31 2^-n with m0 in [2^30, 2^31)."""
    r = rng(hidden, "multiplier")
    # the last two sit exactly halfway between two m0: round half to even (Python's round)
    cases = [0.5, 0.75, 0.001234, 1.5, 0.9999999999, (2**30 + 2.5) / 2**31,
             (2**30 + 6.5) / 2**35]
    cases += [r.uniform(1e-5, 2.0) for _ in range(20 if hidden else 3)]
    for m in cases:
        case = fmt_call("quantized_multiplier", m)
        got = _run(fn, case, m)
        if not isinstance(got, tuple | list) or len(got) != 2:
            fail(f"{case}: should return (m0, n)")
        m0, n = quantize_multiplier(m)
        expect_int(got[0], m0, f"{case}: m0", hint="m0 = round(M0 * 2^31) with M0 in [0.5, 1).")
        expect_int(got[1], n, f"{case}: n")


@check
def check_int_conv2d(fn, hidden: bool = False) -> None:
    """int_conv2d(...) equals efflib's integer reference bit for bit."""
    r = rng(hidden, "int_conv")
    for trial in range(8 if hidden else 3):
        g = torch_gen(r)
        c_in, c_out = r.randint(1, 6), r.randint(1, 6)
        k, stride, padding = r.choice([1, 3]), r.randint(1, 2), r.randint(0, 1)
        shape = (2, c_in, r.randint(3, 8), r.randint(3, 8))
        layer, qx = int8_cases.random_conv(g, shape, c_out, k, stride, padding,
                                           relu=trial % 2 == 0, offset=0.3)
        _expect_int_conv(fn, layer, qx, stride, padding)
    _expect_int_conv(fn, *ties_case(), stride=1, padding=1)


def ties_case() -> tuple[QuantizedLayer, torch.Tensor]:
    """A quarter of the results exactly halfway (int8_cases.halfway), from a fixed seed."""
    g = torch.Generator().manual_seed(4)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 6, generator=g)
    xq = QParams.observe(x)
    layer = QuantizedLayer(conv, xq, QParams.observe(x), relu=False)
    return int8_cases.halfway(layer, x.shape, g)


def _expect_int_conv(fn, layer: QuantizedLayer, qx: torch.Tensor, stride: int,
                     padding: int) -> None:
    relu = layer.relu
    args = (qx, layer.x.zero_point, layer.weight.clone(), layer.bias.clone(), layer.m0.clone(),
            layer.shift.clone(), layer.y.zero_point, relu, stride, padding)
    case = fmt_call("int_conv2d", *args)
    ref = layer(qx)
    got = _integers(_run(fn, case, *args, forbidden=QUANT_OPS + ("quantized_conv2d",)),
                    case, tuple(ref.shape))
    if not torch.equal(got, ref):
        i = tuple(int(v) for v in (got != ref).nonzero()[0])
        fail(f"{case}: at index {i} got {int(got[i])}{compared(int(got[i]), int(ref[i]))}. "
             "Subtract "
             "z_x before the convolution (padding is then 0), add the int32 bias, multiply "
             "by m0 in 64 bits, add 2^(30+n), shift right by 31+n, add z_y, clamp"
             + (" from z_y (ReLU)." if relu else "."))


# --- Q10. Folding batch norm --------------------------------------------------------------

def _layer(x: torch.Tensor, w: torch.Tensor, b, groups: int) -> torch.Tensor:
    if w.dim() == 2:
        return torch.nn.functional.linear(x, w, b)
    return torch.nn.functional.conv2d(x, w, b, padding=1, groups=groups)


@check
def check_fold_batchnorm(fn, hidden: bool = False) -> None:
    """fold_batchnorm(w, b, mean, var, gamma, beta, eps) -> (w, b) of one layer computing
    bn(layer(x)) in eval mode; judged on the layer's outputs against torch's batch norm."""
    r = rng(hidden, "fold_bn")
    # (c_in, c_out, groups, kernel (0: a linear layer), bias, eps)
    cases = [(3, 4, 1, 3, True, 1e-3), (2, 3, 1, 1, False, 1e-5), (5, 3, 1, 0, True, 1e-2)]
    if hidden:
        cases += [(6, 6, 6, 3, False, 1e-5), (4, 8, 2, 3, True, 0.1), (7, 2, 1, 0, False, 1e-3)]
        cases += [(c := r.randint(1, 6), c * r.randint(1, 3), 1, r.choice([0, 1, 3]),
                   r.random() < 0.5, r.choice([1e-5, 1e-3, 0.05])) for _ in range(4)]
    for c_in, c_out, groups, k, bias, eps in cases:
        g = torch_gen(r)
        shape = (c_out, c_in) if k == 0 else (c_out, c_in // groups, k, k)
        w = torch.randn(shape, generator=g)
        b = torch.randn(c_out, generator=g) if bias else None
        mean = 2 * torch.randn(c_out, generator=g)
        var = torch.rand(c_out, generator=g) * 3 + 0.01  # some small: eps matters there
        gamma = torch.randn(c_out, generator=g)          # some negative
        beta = torch.randn(c_out, generator=g)
        case = fmt_call("fold_batchnorm", w, b, mean, var, gamma, beta, eps)
        with watch(forbidden=QUANT_OPS + NORM_OPS, topics=TOPICS, modules=FUSERS):
            got = call(fn, case, w.clone(), None if b is None else b.clone(), mean.clone(),
                       var.clone(), gamma.clone(), beta.clone(), eps)
        if not isinstance(got, tuple | list) or len(got) != 2:
            fail(f"{case}: should return (weight, bias), the bias a tensor even when b is None")
        w2 = _tensor(got[0], f"{case}: weight", tuple(w.shape))
        b2 = _tensor(got[1], f"{case}: bias", (c_out,))
        x = torch.randn((5, c_in) if k == 0 else (2, c_in, 5, 5), generator=g).double()
        ref = torch.nn.functional.batch_norm(
            _layer(x, w.double(), None if b is None else b.double(), groups), mean.double(),
            var.double(), gamma.double(), beta.double(), False, 0.0, eps)
        expect_close(_layer(x, w2.double(), b2.double(), groups), ref,
                     f"{case}: the layer's output with your weight and bias", atol=1e-4,
                     hint="Output channel c is scaled by gamma[c] / sqrt(var[c] + eps) (dim 0 "
                     "of the weight); the bias takes the mean off before the same scaling, "
                     "then beta on.")


# --- Q11. Entropy calibration ---------------------------------------------------------------

def _calibration_values(kind: str, g: torch.Generator) -> torch.Tensor:
    """Non-negative values, as a ReLU gives: with rare outliers, a long tail, flat, gapped."""
    n = 4000
    if kind == "outliers":
        return torch.cat([torch.randn(n, generator=g).abs(), 8 + 20 * torch.rand(8, generator=g)])
    if kind == "laplace":
        return -torch.log(torch.rand(n, generator=g)) * (0.5 + torch.rand(1, generator=g))
    if kind == "flat":
        return torch.rand(n, generator=g)
    if kind == "gaps":
        return torch.round(torch.randn(n, generator=g).abs() * 4) / 4
    return torch.relu(torch.randn(n, generator=g) + 0.5)  # "relu"


@check
def check_entropy_bins(fn, hidden: bool = False) -> None:
    """entropy_bins(hist, levels) -> how many bins to keep: judged by the KL of the cut it
    returns (efflib.quant.calibration, tested bin by bin against SciPy), so an exact tie
    either way passes."""
    r = rng(hidden, "entropy_bins")
    cases = [("outliers", 128, 16), ("relu", 64, 8), ("flat", 48, 8)]
    if hidden:
        cases += [("gaps", 96, 12), ("laplace", 100, 7), ("outliers", 256, 32)]
        cases += [(r.choice(["outliers", "laplace", "gaps", "relu"]), r.randint(40, 200),
                   r.randint(3, 24)) for _ in range(4)]
    for kind, bins, levels in cases:
        x = _calibration_values(kind, torch_gen(r))
        hist = torch.histc(x, bins, 0, float(x.max()))
        case = fmt_call("entropy_bins", hist, levels) + f"  # {kind}"
        got = as_int(_run(fn, case, hist.clone(), levels), case)
        if not levels <= got <= bins:
            fail(f"{case}: returned {got}; keep at least `levels` ({levels}) bins and at most "
                 f"all {bins}.")
        kl = kl_divergences(hist, levels)
        best = float(kl.min())
        if float(kl[got]) > best * (1 + 1e-6) + 1e-12:
            fail(f"{case}: keeping {got} bins is not the cut of least KL(P || Q); another "
                 "loses less. P: the first i bins, everything beyond added to the last. Q: "
                 "each level's total spread over its non-empty bins only.")
