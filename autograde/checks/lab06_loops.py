"""Checks for Lab 06, convolution loops from Python to compiled C.

Every reference is PyTorch's convolution (or efflib's integer model, itself held
to torch's int8 kernels). Loop questions refuse torch's convolution, unfold,
matrix products and padding; C questions refuse sources that reach back into
Python or the system, and run the student's compiled code in their own kernel
(inside the sandbox when grading).
"""

import re

import torch
import torch.nn.functional as F

from autograde.checks.api import (
    as_plain_tensor,
    call,
    check,
    compared,
    expect_close,
    fail,
    fmt_call,
    rng,
    torch_gen,
    type_name,
    watch,
)
from efflib import export_c
from efflib.quant.integer import QParams, QuantizedLayer, convert
from efflib.quant.linear import QuantSpec, quantize

CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose2d",
            "unfold", "fold", "im2col", "col2im", "avg_pool2d", "adaptive_avg_pool2d",
            "max_pool2d")
MATMUL_OPS = ("matmul", "mm", "bmm", "mv", "dot", "einsum", "tensordot", "linear", "addmm",
              "baddbmm", "addmv", "addbmm", "chain_matmul", "inner", "outer", "__matmul__")
PAD_OPS = ("pad", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "zero_pad2d")
TO_NUMPY = ("numpy", "__array__")
LOOP_FORBIDDEN = CONV_OPS + MATMUL_OPS + PAD_OPS + TO_NUMPY
TOPICS = ("conv_loops",)
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
    """conv2d_numba(x, w) (padding 1) equals F.conv2d, and its kernel is numba-compiled."""
    if type_name(kernel) != "CPUDispatcher":
        fail(f"conv_kernel should be a function compiled with @numba.njit, got "
             f"{type_name(kernel)}")
    r = rng(hidden, "numba")
    for _ in range(4 if hidden else 2):
        g = torch_gen(r)
        x = torch.randn(r.randint(1, 8), r.randint(3, 12), r.randint(3, 12), generator=g)
        w = torch.randn(r.randint(1, 8), x.shape[0], 3, 3, generator=g)
        case = fmt_call("conv2d_numba", x, w)
        got = _run(fn, case, x.clone(), w.clone(), forbidden=CONV_OPS + MATMUL_OPS, numpy=())
        expect_close(got, F.conv2d(x[None], w, padding=1)[0], case, atol=1e-3)


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
        got = _run(conv_fn, case, x.clone(), w.clone(), b.clone(), stride, padding,
                   forbidden=CONV_OPS)
        expect_close(got, F.conv2d(x[None], w, b, stride, padding)[0], case, atol=1e-4,
                     hint="(M, C*R*S) @ (C*R*S, P*Q), plus the bias, reshaped to (M, P, Q).")


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


@check
def check_c_conv(source, fn, hidden: bool = False, what: str = "C_CONV") -> None:
    """The C source is plain, and conv2d_c(x, w, b, padding) through it equals F.conv2d."""
    check_c_source(source, what)
    r = rng(hidden, "c_conv")
    for _ in range(4 if hidden else 2):
        g = torch_gen(r)
        c, m, k = r.randint(1, 8), r.randint(1, 8), r.choice([1, 3, 5])
        x = torch.randn(c, r.randint(k, 12), r.randint(k, 12), generator=g)
        w, b = torch.randn(m, c, k, k, generator=g), torch.randn(m, generator=g)
        padding = r.randint(0, k // 2)
        case = fmt_call(f"conv2d_c  # with {what}", x, w, b, padding)
        got = call(fn, case, x.clone(), w.clone(), b.clone(), padding)
        expect_close(got, F.conv2d(x[None], w, b, padding=padding)[0], case, atol=1e-3)


@check
def check_c_int8_conv(source, fn, hidden: bool = False) -> None:
    """The C source is plain, and int8_conv_c(...) through it equals efflib's integers."""
    check_c_source(source, "C_INT8_CONV")
    r = rng(hidden, "c_int8")
    for trial in range(5 if hidden else 2):
        g = torch_gen(r)
        c, m, k = r.randint(1, 6), r.randint(1, 6), r.choice([1, 3])
        padding = r.randint(0, k // 2)
        conv = torch.nn.Conv2d(c, m, k, padding=padding)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
            conv.bias.copy_(torch.randn(m, generator=g) * 0.1)
        x = torch.randn(1, c, r.randint(3, 9), r.randint(3, 9), generator=g) + 0.2
        xq, yq = QParams.observe(x), QParams.observe(conv(x))
        layer = QuantizedLayer(conv, xq, yq, relu=trial % 2 == 0)
        qx = quantize(x, xq.scale, xq.zero_point, QuantSpec(8, signed=False))
        args = (qx[0], xq.zero_point, layer.weight, layer.bias, layer.m0, layer.shift,
                yq.zero_point, layer.relu, padding)
        case = fmt_call("int8_conv_c", *args)
        ref = layer(qx)[0]
        got = as_plain_tensor(call(fn, case, *args), case).to(torch.int64)
        if tuple(got.shape) != tuple(ref.shape) or not torch.equal(got, ref):
            detail = (f"shape {tuple(got.shape)}{compared(tuple(got.shape), tuple(ref.shape))}"
                      if got.shape != ref.shape else
                      f"{int((got != ref).sum())} of {ref.numel()} integers differ")
            fail(f"{case}: {detail}. Accumulate in int32 from (x - z_x) * w + bias, then "
                 "(acc * m0 + 2^(30+n)) >> (31+n) in int64, add z_y and clamp"
                 + (" from z_y (ReLU)." if layer.relu else " to [0, 255]."))


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
