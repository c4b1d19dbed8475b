"""Checks for Lab 06, convolution loops from Python to compiled C.

Every reference is PyTorch's convolution (or efflib's integer model, itself held
to torch's int8 kernels). Loop questions refuse torch's convolution, unfold,
matrix products and padding. The numba kernel is called itself, on NumPy arrays.
The C questions compile the student's source here, as a program of its own with
no library behind it, checked for undefined behaviour (judging.native), and run
it on every case: the Python wrapper is checked too, but the C must compute.
"""

import re

import torch
import torch.nn.functional as F

from autograde.checks.api import (
    CSignature,
    Withheld,
    as_plain_tensor,
    c_program,
    call,
    call_arrays,
    call_traced,
    check,
    compared,
    expect_close,
    fail,
    fmt_call,
    rng,
    run_c,
    torch_gen,
    type_name,
    watch,
)
from efflib import export_c
from efflib.quant import int8_cases
from efflib.quant.integer import QParams, convert

CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d",
            "unfold", "fold", "im2col", "col2im", "avg_pool2d", "adaptive_avg_pool2d",
            "max_pool2d")
MATMUL_OPS = ("matmul", "mm", "bmm", "mv", "dot", "einsum", "tensordot", "linear", "addmm",
              "baddbmm", "addmv", "addbmm", "chain_matmul", "inner", "outer", "__matmul__")
PAD_OPS = ("pad", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "zero_pad2d")
TO_NUMPY = ("numpy", "__array__")
PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "mv", "dot", "addbmm", "matmul")
LOOP_FORBIDDEN = CONV_OPS + MATMUL_OPS + PAD_OPS + TO_NUMPY
TOPICS = ("conv_loops",)
# the clean room (judging.clean_room) has none of these: Q7 asks for CProgram.run
WITHHELD = Withheld(topics=(*TOPICS, "deploy"))
NUMPY_OPS = ("convolve", "correlate", "correlate2", "dot", "vdot", "matmul", "inner", "outer",
             "tensordot", "einsum", "c_einsum", "convolve2d", "correlate2d", "_convolve2d",
             "fftconvolve", "oaconvolve", "as_strided", "sliding_window_view")
C_INCLUDES = {"stdint.h", "stddef.h", "math.h", "string.h"}
C_FORBIDDEN = re.compile(r"\b(Py\w*|dlopen|dlsym|system|popen|exec\w*|fork|asm|__asm__|"
                         r"syscall|fopen|open|mmap)\b")


def _run(fn, case, *args, forbidden=LOOP_FORBIDDEN, numpy=NUMPY_OPS):
    with watch(forbidden=forbidden, topics=TOPICS, numpy=numpy):
        return call(fn, case, *args)


def _conv_case(r, g, hidden: bool, depthwise: bool = False):
    c = r.randint(1, 4)
    m = c if depthwise else r.randint(1, 4)
    k = r.choice([1, 2, 3] if hidden else [1, 3])
    x = torch.randn(r.randint(1, 2), c, r.randint(k, 7), r.randint(k, 7), generator=g)
    w = torch.randn(m, 1 if depthwise else c, k, k, generator=g)
    return x, w, torch.randn(m, generator=g)


# --- Q1. The seven loops in Python ----------------------------------------------------

@check
def check_conv2d_direct(fn, hidden: bool = False) -> None:
    """conv2d_direct(x, w, b, stride, padding, dilation) equals F.conv2d, written as loops."""
    r = rng(hidden, "direct")
    cases = [(1, 0, 1), (1, 1, 1), (2, 1, 1), (1, 2, 2)]
    cases += [(r.randint(1, 3), r.randint(0, 2), r.randint(1, 2))
              for _ in range(10 if hidden else 2)]
    for stride, padding, dilation in cases:
        g = torch_gen(r)
        x, w, b = _conv_case(r, g, hidden)
        x = F.pad(x, (0, 2 * dilation, 0, 2 * dilation))  # room for any dilated kernel
        case = fmt_call("conv2d_direct", x, w, b, stride, padding, dilation)
        got = _run(fn, case, x.clone(), w.clone(), b.clone(), stride, padding, dilation)
        expect_close(got, F.conv2d(x, w, b, stride, padding, dilation), case, atol=1e-4,
                     hint="P = (H + 2*padding - dilation*(R-1) - 1) // stride + 1; read input "
                          "row p*stride + r*dilation - padding and skip it when out of range.")


# --- Q2. The notes' other loops -----------------------------------------------------------

def _shift_reference(x: torch.Tensor, k: int) -> torch.Tensor:
    c = x.shape[1]
    w = torch.zeros(c, 1, k, k)
    for ch in range(c):
        group = ch * k * k // c
        w[ch, 0, group // k, group % k] = 1.0
    return F.conv2d(x, w, padding=k // 2, groups=c)


@check
def check_other_loops(avgpool_fn, conv_bias_relu_fn, depthwise_fn, shift_fn,
                      hidden: bool = False) -> None:
    """Global average pool, 1x1 conv + bias + ReLU (conv_last), depthwise conv, shift."""
    r = rng(hidden, "other")
    for _ in range(6 if hidden else 2):
        g = torch_gen(r)
        x = torch.randn(r.randint(1, 6), r.randint(1, 5), r.randint(1, 5), generator=g)
        case = fmt_call("avgpool_loops", x)
        expect_close(_run(avgpool_fn, case, x.clone()), x.mean(dim=(1, 2)), case, atol=1e-5,
                     hint="One mean per channel over its H x W values.")
        c, m = x.shape[0], r.randint(1, 6)
        w, b = torch.randn(m, c, 1, 1, generator=g), torch.randn(m, generator=g)
        case = fmt_call("conv_bias_relu_loops", x, w, b)
        ref = torch.relu(F.conv2d(x[None], w, b))[0]
        expect_close(_run(conv_bias_relu_fn, case, x.clone(), w.clone(), b.clone()), ref,
                     case, atol=1e-4, hint="sum over input channels, add the bias, then ReLU.")
        xd, wd, _ = _conv_case(r, g, hidden, depthwise=True)
        stride, padding = r.randint(1, 2), r.randint(0, 1)
        case = fmt_call("depthwise_loops", xd, wd, stride, padding)
        expect_close(_run(depthwise_fn, case, xd.clone(), wd.clone(), stride, padding),
                     F.conv2d(xd, wd, None, stride, padding, groups=xd.shape[1]), case,
                     atol=1e-4, hint="Output channel c reads input channel c only.")
        k = r.choice([3, 5])
        xs = torch.randn(1, r.randint(1, 3 * k * k), r.randint(1, 6), r.randint(1, 6),
                         generator=g)
        case = fmt_call("shift_loops", xs, k)
        expect_close(_run(shift_fn, case, xs.clone(), k), _shift_reference(xs, k), case,
                     atol=0, rtol=0, hint="Channel c belongs to group c*k*k // C, which reads "
                     "the input at offset (group // k - k//2, group % k - k//2), 0 outside.")


# --- Q3. Compiled loops -------------------------------------------------------------------

@check
def check_conv2d_numba(kernel, fn, hidden: bool = False) -> None:
    """conv_kernel is numba-compiled and computes the convolution itself (called here on a
    padded input); conv2d_numba(x, w) (padding 1) equals F.conv2d and builds nothing of
    NumPy's or torch's convolutions."""
    if type_name(kernel) != "CPUDispatcher":
        fail(f"conv_kernel should be a function compiled with @numba.njit, got "
             f"{type_name(kernel)}")
    r = rng(hidden, "numba")
    for _ in range(4 if hidden else 2):
        g = torch_gen(r)
        x = torch.randn(r.randint(1, 8), r.randint(3, 12), r.randint(3, 12), generator=g)
        w = torch.randn(r.randint(1, 8), x.shape[0], 3, 3, generator=g)
        ref = F.conv2d(x[None], w, padding=1)[0]
        case = f"conv_kernel(xp <padded {tuple(x.shape)}>, w {tuple(w.shape)}, out (zeros))"
        xp = F.pad(x, (1, 1, 1, 1))
        out = call_arrays(kernel, case, xp, w, torch.zeros(ref.shape))[2]
        expect_close(out, ref, case, atol=1e-3,
                     hint="The kernel adds w[m, c, r, s] * xp[c, p + r, q + s] into out[m, p, q] "
                          "for every m, c, r, s, p, q: it is the convolution, compiled.")
        case = fmt_call("conv2d_numba", x, w)
        got = _run(fn, case, x.clone(), w.clone(), forbidden=CONV_OPS + MATMUL_OPS)
        expect_close(got, ref, case, atol=1e-3)


# --- Q4. im2col + GEMM ----------------------------------------------------------------------

@check
def check_im2col(im2col_fn, conv_fn, hidden: bool = False) -> None:
    """im2col(x, k, stride, padding) equals F.unfold's patch matrix; conv2d_im2col, F.conv2d."""
    r = rng(hidden, "im2col")
    for _ in range(8 if hidden else 3):
        g = torch_gen(r)
        x, w, b = _conv_case(r, g, hidden)
        x = x[0]
        k, stride, padding = w.shape[-1], r.randint(1, 2), r.randint(0, 1)
        case = fmt_call("im2col", x, k, stride, padding)
        got = _run(im2col_fn, case, x.clone(), k, stride, padding,
                   forbidden=CONV_OPS + MATMUL_OPS)
        ref = F.unfold(x[None], k, padding=padding, stride=stride)[0]
        expect_close(got, ref, case, atol=0, rtol=0,
                     hint="Row (c, r, s) in that order, column (p, q) in that order; zeros "
                          "where a patch hangs over the edge.")
        case = fmt_call("conv2d_im2col", x, w, b, stride, padding)
        with watch(forbidden=CONV_OPS, topics=TOPICS, numpy=NUMPY_OPS):
            got = call_traced(conv_fn, case, x.clone(), w.clone(), b.clone(), stride, padding)
        products = [op for op in got.graph.op_names() if op in PRODUCTS]
        count = sum(1 for step in got.graph.steps if step[0] == "call"
                    and step[5] != "getitem" and step[5].split(".")[1] in PRODUCTS)
        if count != 1:
            fail(f"{case}: the question asks for one matrix product of the weights with the "
                 f"column matrix; your function runs {count} ({', '.join(products) or 'none'})"
                 ". Build the columns with im2col, then one @.")
        expect_close(got.value, F.conv2d(x[None], w, b, stride, padding)[0], case, atol=1e-4,
                     hint="(M, C*R*S) @ (C*R*S, P*Q), plus the bias, reshaped to (M, P, Q).")
        got.follows(lambda x, w, b, s=stride, p=padding: F.conv2d(x[None], w, b, s, p)[0])


# --- Q5 and Q6. C --------------------------------------------------------------------------

@check
def check_c_source(source, what: str) -> None:
    """The C source is plain computation: no Python, no system calls, standard headers only."""
    if not isinstance(source, str) or not source.strip():
        fail(f"{what} should be a string of C source, got {type(source).__name__}")
    includes = set(re.findall(r"#\s*include\s*[<\"]([^>\"]+)[>\"]", source))
    if includes - C_INCLUDES:
        fail(f"{what} includes {sorted(includes - C_INCLUDES)}; only "
             f"{sorted(C_INCLUDES)} are allowed: the kernel computes, nothing else.")
    if found := C_FORBIDDEN.search(re.sub(r"//.*|/\*.*?\*/", "", source, flags=re.S)):
        fail(f"{what} uses {found.group(0)!r}: a convolution needs no Python, processes, "
             "files or assembly.")


CONV2D = CSignature("conv2d", (
    ("const float *", "x"), ("const float *", "w"), ("const float *", "b"), ("float *", "y"),
    ("int", "C"), ("int", "H"), ("int", "W"), ("int", "M"), ("int", "R"), ("int", "S"),
    ("int", "pad")))
CONV_INT8 = CSignature("conv_int8", (
    ("const uint8_t *", "x"), ("const int8_t *", "w"), ("const int32_t *", "b"),
    ("const int32_t *", "m0"), ("const int32_t *", "shift"), ("uint8_t *", "y"),
    ("int", "C"), ("int", "H"), ("int", "W"), ("int", "M"), ("int", "R"), ("int", "S"),
    ("int", "pad"), ("int", "zx"), ("int", "zy"), ("int", "relu")))
REAL_LAYER = (64, 56, 56, 64, 3)  # C, H, W, M, k: the layer this lab times
SPEEDUP = 2.0  # C_CONV_FAST against C_CONV, both timed here, interleaved


def _c_conv_cases(r, hidden: bool) -> list[tuple[int, int, int, int, int, int]]:
    """(C, H, W, M, k, pad): padding in most, rectangular images; hidden, larger ones
    too, up to the real layer, larger than any visible case in every dimension."""
    cases = [(3, 7, 5, 4, 3, 1), (2, 6, 6, 3, 5, 2), (4, 5, 9, 5, 1, 0)]
    for _ in range(4 if hidden else 1):
        k = r.choice([1, 3, 5])
        cases.append((r.randint(1, 8), r.randint(k, 12), r.randint(k, 12), r.randint(1, 8), k,
                      r.randint(0, k // 2)))
    if hidden:
        cases += [(r.randint(9, 24), r.randint(13, 30), r.randint(13, 30), r.randint(9, 24),
                   3, 1), (*REAL_LAYER, 1)]
    return cases


@check
def check_c_conv(source, fn, hidden: bool = False, what: str = "C_CONV") -> None:
    """The C source is plain; compiled here, as a program of its own, it equals F.conv2d on
    every case, and so does conv2d_c(x, w, b, padding) through it."""
    check_c_source(source, what)
    program = c_program(source, CONV2D, what)
    r = rng(hidden, "c_conv")
    for i, (c, h, w_, m, k, pad) in enumerate(_c_conv_cases(r, hidden)):
        g = torch_gen(r)
        x = torch.randn(c, h, w_, generator=g)
        w, b = torch.randn(m, c, k, k, generator=g), torch.randn(m, generator=g)
        ref = F.conv2d(x[None], w, b, padding=pad)[0]
        case = f"{what}'s conv2d on x {(c, h, w_)}, w {(m, c, k, k)}, pad={pad}"
        out, _ = run_c(program, CONV2D, {"x": x, "w": w, "b": b, "y": torch.zeros(ref.shape)},
                       dict(C=c, H=h, W=w_, M=m, R=k, S=k, pad=pad), what)
        expect_close(out["y"].reshape(ref.shape), ref, case, atol=1e-3, rtol=1e-4,
                     hint="P = H + 2*pad - R + 1; skip the input positions that fall in the "
                          "padding (the notes' bounds check).")
        if i < 2:  # the wrapper too: it is what the lab's measurements call
            case = fmt_call(f"conv2d_c  # with {what}", x, w, b, pad)
            got = call(fn, case, x.clone(), w.clone(), b.clone(), pad)
            expect_close(got, ref, case, atol=1e-3)


@check
def check_c_speedup(source, fast_source) -> None:
    """C_CONV_FAST, compiled here, computes the real layer at least SPEEDUP times faster
    than C_CONV, timed in turns in one run (a busy machine slows both alike)."""
    c, h, w_, m, k = REAL_LAYER
    g = torch.Generator().manual_seed(6)
    x, w, b = torch.randn(c, h, w_, generator=g), torch.randn(m, c, k, k, generator=g), \
        torch.randn(m, generator=g)
    arrays, ints = {"x": x, "w": w, "b": b, "y": torch.zeros(m, h, w_)}, \
        dict(C=c, H=h, W=w_, M=m, R=k, S=k, pad=1)
    programs = {what: c_program(src, CONV2D, what, checked=False)
                for what, src in (("C_CONV", source), ("C_CONV_FAST", fast_source))}
    ref = F.conv2d(x[None], w, b, padding=1)[0]
    times: dict[str, list[float]] = {"C_CONV": [], "C_CONV_FAST": []}
    for _ in range(3):
        for what, program in programs.items():
            out, seconds = run_c(program, CONV2D, arrays, ints, what)
            times[what].append(seconds)
            expect_close(out["y"].reshape(ref.shape), ref, f"{what} on the {c}x{h}x{w_} -> "
                         f"{m} layer (3x3, pad 1)", atol=1e-2, rtol=1e-3,
                         hint="No buffer may be sized for small cases.")
    naive, fast = (sorted(times[what])[1] for what in ("C_CONV", "C_CONV_FAST"))
    if fast * SPEEDUP > naive:
        fail(f"C_CONV_FAST takes {fast * 1e3:.1f} ms on the {c}x{h}x{w_} -> {m} layer, "
             f"C_CONV {naive * 1e3:.1f} ms (both timed here, in turns): it should be at "
             f"least {SPEEDUP:g}x faster. Make the innermost loop walk memory contiguously, "
             "hoist the bounds check out of it, and let output channels share each load.")


def _int8_case(g, c: int, h: int, w_: int, m: int, k: int, pad: int, relu: bool,
               scale: float = 0.3):
    return int8_cases.random_conv(g, (1, c, h, w_), m, k, 1, pad, relu, scale)


def _int8_ties(g):
    """Halfway results (int8_cases.halfway): the fixed-point formula rounds them up."""
    layer, qx = _int8_case(g, 3, 6, 6, 4, 3, 1, relu=False)
    return int8_cases.halfway(layer, qx.shape, g)


def _int8_large(g):
    """64 channels of 3x3 at full scale, M = 2^-17: sums far beyond int16 (and products
    with m0 far beyond int32), results spread over the grid, none saturating."""
    layer, qx = _int8_case(g, 64, 6, 5, 4, 3, 1, relu=False)
    layer.weight = torch.randint(-127, 128, layer.weight.shape, generator=g)
    layer.m0 = torch.full_like(layer.m0, 2**30)
    layer.shift = torch.full_like(layer.shift, 16)
    layer.y = QParams(layer.y.scale, 128)
    return layer, qx


@check
def check_c_int8_conv(source, fn, hidden: bool = False) -> None:
    """The C source is plain; compiled here (checked: no signed overflow), it equals efflib's
    integers bit for bit on every case (padding, halfway results, sums beyond int16), and so
    does int8_conv_c(...) through it."""
    check_c_source(source, "C_INT8_CONV")
    program = c_program(source, CONV_INT8, "C_INT8_CONV")
    r = rng(hidden, "c_int8")
    g = torch_gen(r)
    cases = [_int8_case(g, 3, 5, 6, 4, 3, 1, relu=True), _int8_case(g, 2, 6, 4, 3, 3, 1,
                                                                      relu=False),
             _int8_ties(g), _int8_large(g)]
    for trial in range(5 if hidden else 1):
        k = r.choice([1, 3])
        cases.append(_int8_case(g, r.randint(1, 6), r.randint(3, 9), r.randint(3, 9),
                                r.randint(1, 6), k, r.randint(0, k // 2), relu=trial % 2 == 0))
    if hidden:
        cases.append(_int8_case(g, 70, 12, 11, 9, 3, 1, relu=True, scale=1.0))
    for i, (layer, qx) in enumerate(cases):
        c, h, w_ = qx.shape[1:]
        m, _, k, _ = layer.weight.shape
        pad = layer.conv.padding[0]
        ref = layer(qx)[0]
        case = (f"C_INT8_CONV's conv_int8 on x {(c, h, w_)}, w {(m, c, k, k)}, pad={pad}, "
                f"zx={layer.x.zero_point}, relu={layer.relu}")
        out, _ = run_c(program, CONV_INT8, {
            "x": qx[0], "w": layer.weight, "b": layer.bias, "m0": layer.m0,
            "shift": layer.shift, "y": torch.zeros(ref.shape, dtype=torch.uint8)},
            dict(C=c, H=h, W=w_, M=m, R=k, S=k, pad=pad, zx=layer.x.zero_point,
                 zy=layer.y.zero_point, relu=int(layer.relu)), "C_INT8_CONV")
        _expect_integers(out["y"].reshape(ref.shape).to(torch.int64), ref, case, layer.relu)
        if i < 2:  # the wrapper too
            args = (qx[0], layer.x.zero_point, layer.weight, layer.bias, layer.m0,
                    layer.shift, layer.y.zero_point, layer.relu, pad)
            case = fmt_call("int8_conv_c", *args)
            got = as_plain_tensor(call(fn, case, *args), case).to(torch.int64)
            _expect_integers(got, ref, case, layer.relu)


def _expect_integers(got: torch.Tensor, ref: torch.Tensor, case: str, relu: bool) -> None:
    if tuple(got.shape) != tuple(ref.shape) or not torch.equal(got, ref):
        detail = (f"shape {tuple(got.shape)}{compared(tuple(got.shape), tuple(ref.shape))}"
                  if got.shape != ref.shape else
                  f"{int((got != ref).sum())} of {ref.numel()} integers differ")
        fail(f"{case}: {detail}. Accumulate in int32 from (x - z_x) * w + bias, skipping "
             "padded positions (they equal z_x), then (acc * m0 + 2^(30+n)) >> (31+n) in "
             "int64, add z_y and clamp" + (" from z_y (ReLU)." if relu else " to [0, 255]."))


# --- Q7. Deploy -----------------------------------------------------------------------------

@check
def check_deploy(fn, hidden: bool = False) -> None:
    """run_standalone(header, source, images) compiles the program, runs it as its own
    process and returns its predictions, equal to efflib's integer model's."""
    r = rng(hidden, "deploy")
    torch.manual_seed(r.randrange(2**31))
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(6, 5)).eval()
    x = torch.randn(40, 1, 8, 8)
    int_model = convert(model, x[:20])
    program = export_c.export(int_model, (1, 8, 8))
    case = "run_standalone(program.header, program.source, images (20, 1, 8, 8))"
    with watch(topics=("deploy",)):  # efflib's CProgram.run is this answer
        got = call(fn, case, program.header, program.source, x[20:].clone())
    got = as_plain_tensor(got, case).to(torch.int64).reshape(-1)
    ref = int_model.predict(x[20:])
    if got.shape != ref.shape or not torch.equal(got, ref):
        fail(f"{case}: the predictions differ from the integer model's; compile header and "
             "source into one program, run it on a file of float32 images and read the first "
             "number of each line it prints.")
