"""The Lab 06 checks accept the solution and reject wrong, lazy and hostile answers."""


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lazy import LAB06, defined

from autograde.checks import lab06_loops as C
from autograde.checks.api import CheckFailed, NotAnswered
from efflib import loops
from efflib.graded import GradedAnswerError

FAILS = (CheckFailed, GradedAnswerError)
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated")


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_conv2d_direct(solution.conv2d_direct, hidden)
    C.check_other_loops(solution.avgpool_loops, solution.conv_bias_relu_loops,
                        solution.depthwise_loops, solution.shift_loops, hidden)
    C.check_conv2d_numba(solution.conv_kernel, solution.conv2d_numba, hidden)
    C.check_im2col(solution.im2col, solution.conv2d_im2col, hidden)
    C.check_c_conv(solution.C_CONV, solution.conv2d_c, hidden)
    C.check_c_conv(solution.C_CONV_FAST, solution.conv2d_c_fast, hidden, "C_CONV_FAST")
    C.check_c_int8_conv(solution.C_INT8_CONV, solution.int8_conv_c, hidden)


def test_solution_deploys(solution):
    C.check_deploy(solution.run_standalone)


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


def test_blank_answers_fail_clearly():
    for check in (C.check_conv2d_direct,):
        with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
            check(not_implemented)
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        C.check_other_loops(*[not_implemented] * 4)
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        C.check_im2col(not_implemented, not_implemented)
    with pytest.raises(NotAnswered, match="still None"):  # the lab's own starting value
        C.check_c_conv(None, not_implemented)
    with pytest.raises(CheckFailed, match="should be a string of C source"):
        C.check_c_conv(42, not_implemented)
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        C.check_deploy(not_implemented)


def test_loop_answers_that_call_torch_or_efflib_fail():
    hostile = [
        lambda x, w, b, s, p, d: F.conv2d(x, w, b, s, p, d),
        lambda x, w, b, s, p, d: loops.conv2d_direct(x, w, b, s, p, d),
        lambda x, w, b, s, p, d: torch.from_numpy(np.zeros(1)) if x.numpy() is None else None,
    ]
    for fn in hostile:
        with pytest.raises(FAILS):
            C.check_conv2d_direct(fn)


def numpy_conv2d(x, w, b, stride, padding, dilation):
    """Correct for stride 1, no padding or dilation, through NumPy's correlate."""
    xs, ws = np.array(x.tolist()), np.array(w.tolist())
    n, c, h, wd = xs.shape
    m, _, r, s = ws.shape
    out = np.zeros((n, m, h - r + 1, wd - s + 1))
    for i, j, k in np.ndindex(n, m, c):
        for p in range(h - r + 1):
            for rr in range(r):
                out[i, j, p] += np.correlate(xs[i, k, p + rr], ws[j, k, rr], mode="valid")
    return torch.tensor(out + np.array(b.tolist())[None, :, None, None], dtype=torch.float32)


CORRELATE = np.correlate  # an alias taken before any check runs


def aliased_conv2d(x, w, b, stride, padding, dilation):
    xs = x.tolist()
    return torch.tensor([[[[CORRELATE(xs[0][0][0], [1.0])[0]]]]])


def test_numpy_convolutions_are_refused_even_through_an_alias():
    for fn in (numpy_conv2d, aliased_conv2d):
        with pytest.raises(CheckFailed, match="numpy's correlate"):
            C.check_conv2d_direct(fn)


def test_switching_the_profiler_off_does_not_hide_calls(solution):
    import sys

    def sneaky(x, w, b, stride, padding, dilation):
        sys.setprofile(None)
        return solution.conv2d_direct(x, w, b, stride, padding, dilation)
    with pytest.raises(CheckFailed, match="replaced the profiler"):
        C.check_conv2d_direct(sneaky)


def test_loop_mistakes_fail(solution):
    def no_dilation(x, w, b, stride, padding, dilation):
        return solution.conv2d_direct(x, w, b, stride, padding, 1)

    def padded_copy(x, w, b, stride, padding, dilation):  # pads instead of checking bounds
        return solution.conv2d_direct(F.pad(x, [padding] * 4), w, b, stride, 0, dilation)
    with pytest.raises(CheckFailed, match="conv2d_direct"):
        C.check_conv2d_direct(no_dilation)
    with pytest.raises(CheckFailed, match="calls torch's pad"):
        C.check_conv2d_direct(padded_copy)

    def relu_before_bias(x, w, b):
        return solution.conv_bias_relu_loops(x, w, torch.zeros_like(b)).relu() + b[:, None, None]
    with pytest.raises(CheckFailed, match="conv_bias_relu_loops"):
        C.check_other_loops(solution.avgpool_loops, relu_before_bias, solution.depthwise_loops,
                            solution.shift_loops)

    def unfolded(x, k, stride, padding):
        return F.unfold(x[None], k, padding=padding, stride=stride)[0]
    with pytest.raises(CheckFailed, match="calls torch's"):
        C.check_im2col(unfolded, solution.conv2d_im2col)

    def transposed(x, k, stride, padding):  # rows (r, s, c) instead of (c, r, s)
        cols = solution.im2col(x, k, stride, padding)
        c = x.shape[0]
        return cols.reshape(c, k * k, -1).transpose(0, 1).reshape(c * k * k, -1)
    with pytest.raises(CheckFailed, match="im2col"):
        C.check_im2col(transposed, solution.conv2d_im2col, hidden=True)


def test_a_plain_python_kernel_is_not_numba(solution):
    def kernel(xp, w, out):
        pass
    with pytest.raises(CheckFailed, match="numba.njit"):
        C.check_conv2d_numba(kernel, solution.conv2d_numba)


@pytest.mark.parametrize("bad", [
    '#include <Python.h>\nvoid conv2d(void) { Py_Initialize(); }',
    '#include <stdlib.h>\nvoid conv2d(void) { system("id"); }',
    '#include <dlfcn.h>\nvoid conv2d(void) { dlopen("libpython3.so", 0); }',
    'void conv2d(void) { __asm__("nop"); }',
    'extern int PyRun_SimpleString(const char *);\nvoid conv2d(void) { PyRun_SimpleString("");}',
])
def test_c_that_reaches_back_into_python_or_the_system_fails(solution, bad):
    with pytest.raises(CheckFailed, match="C_CONV"):
        C.check_c_conv(bad, solution.conv2d_c)


def test_c_mistakes_fail(solution, monkeypatch):
    wrong = solution.C_CONV.replace("float acc = b[m];", "float acc = 0;")
    with pytest.raises(CheckFailed, match="C_CONV's conv2d"):
        C.check_c_conv(wrong, lambda x, w, b, p: solution.conv2d_c(x, w, b, p, source=wrong))
    rounding = solution.C_INT8_CONV.replace("((int64_t)1 << (total - 1))", "0")  # truncates
    # the solution's own glue, calling the truncating source
    monkeypatch.setitem(solution.int8_conv_c.__globals__, "C_INT8_CONV", rounding)
    with pytest.raises(CheckFailed, match="C_INT8_CONV's conv_int8"):
        C.check_c_int8_conv(rounding, solution.int8_conv_c)


def test_efflibs_compiled_kernels_are_no_answer(solution):
    """efflib.loops' numba kernels are Lab 06's references: an answer that calls one fails."""
    def through_efflib(x, w):
        xp = np.pad(x.float().numpy(), ((0, 0), (1, 1), (1, 1)))
        out = np.zeros((w.shape[0], x.shape[1], x.shape[2]), np.float32)
        loops.numba_conv("mcrspq")(xp, w.float().numpy(), out)
        return torch.from_numpy(out)
    with pytest.raises(FAILS, match="efflib"):
        C.check_conv2d_numba(solution.conv_kernel, through_efflib)

    def through_bounds(x, w):
        out = np.zeros((w.shape[0], x.shape[1], x.shape[2]), np.float32)
        loops.numba_conv_bounds(x.float().numpy(), w.float().numpy(), out, 1)
        return torch.from_numpy(out)
    with pytest.raises(FAILS, match="efflib"):
        C.check_conv2d_numba(solution.conv_kernel, through_bounds)


def test_deploy_through_efflibs_runner_fails():
    """efflib's CProgram.run is Q7's answer: an answer that calls it fails."""
    from efflib import export_c

    def through_efflib(header, source, images):
        program = export_c.CProgram(header, source, 5)
        return program.run(program.build("corpus"), images)[0]
    with pytest.raises(FAILS, match="efflib"):
        C.check_deploy(through_efflib)


def test_deploy_that_answers_without_running_the_program_fails():
    with pytest.raises(CheckFailed, match="predictions differ"):
        C.check_deploy(lambda header, source, images: torch.zeros(len(images), dtype=int))


# --- the C and numba the student wrote is what is judged: lazy answers that a Python
# wrapper used to carry, each shown by a visible case ---------------------------------------

def test_a_c_stub_beside_a_torch_wrapper_fails(solution):
    """An empty C function, and a wrapper computing with F.conv2d: the C is run itself."""
    with pytest.raises(CheckFailed, match="C_CONV's conv2d"):
        C.check_c_conv("void conv2d(void) { }",
                       lambda x, w, b, p: F.conv2d(x[None], w, b, padding=p)[0])

    def torch_int8(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, padding):
        acc = F.conv2d((q_x - z_x).double()[None], q_w.double(), None, 1, padding)[0]
        acc = acc.round().long() + q_b.reshape(-1, 1, 1)
        total = (31 + shift).reshape(-1, 1, 1)
        y = (acc * m0.reshape(-1, 1, 1) + (1 << (total - 1))) >> total
        return torch.clamp(y + z_y, z_y if relu else 0, 255)
    with pytest.raises(CheckFailed, match="C_INT8_CONV's conv_int8"):
        C.check_c_int8_conv("#include <stdint.h>\nvoid conv_int8(void) { }", torch_int8)


def test_a_fixed_buffer_sized_for_small_cases_fails_on_the_real_layer(solution):
    """A copy of the input into a stack buffer that holds the small cases only: the real
    64x56x56 layer of the visible speed check runs past it."""
    buffered = solution.C_CONV.replace(
        "    int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;",
        "    float copy[4096];\n"
        "    for (int i = 0; i < C * H * W; i++) copy[i] = x[i];\n"
        "    x = copy;\n"
        "    int P = H + 2 * pad - R + 1, Q = W + 2 * pad - S + 1;", 1)
    C.check_c_conv(buffered, solution.conv2d_c)  # the small cases pass
    with pytest.raises(CheckFailed, match="C_CONV"):
        C.check_c_speedup(buffered, solution.C_CONV_FAST)
    with pytest.raises(CheckFailed, match="C_CONV"):
        C.check_c_conv(buffered, solution.conv2d_c, hidden=True)


def test_a_fast_version_that_is_not_faster_fails(solution):
    with pytest.raises(CheckFailed, match="at least 2x faster"):
        C.check_c_speedup(solution.C_CONV, solution.C_CONV)


@pytest.mark.parametrize("mistake, change", [
    ("int32 product overflows",
     ("((int64_t)acc * m0[m] + ((int64_t)1 << (total - 1))) >> total",
      "((int64_t)(acc * m0[m]) + ((int64_t)1 << (total - 1))) >> total")),
    ("int16 accumulator", ("int32_t acc = b[m];", "int16_t acc = (int16_t)b[m];")),
    ("padding taken as 0", ("if (v < 0 || v >= W) continue;",
                            "if (v < 0 || v >= W) { acc += (0 - zx) * (int32_t)"
                            "w[((m * C + c) * R + r) * S + s]; continue; }")),
    ("half away from zero", ("int64_t out = ((int64_t)acc * m0[m] + ((int64_t)1 << (total - 1)))"
                             " >> total;",
                             "int64_t prod = (int64_t)acc * m0[m], half = (int64_t)1 << "
                             "(total - 1); int64_t out = prod >= 0 ? (prod + half) >> total :"
                             " -((-prod + half) >> total);")),
])
def test_int8_c_mistakes_fail_visibly(solution, mistake, change):
    """Each mistake the notes warn of, shown by a visible case of the checked build."""
    source = solution.C_INT8_CONV.replace(*change)
    assert source != solution.C_INT8_CONV, mistake
    with pytest.raises(CheckFailed, match="C_INT8_CONV"):
        C.check_c_int8_conv(source, solution.int8_conv_c)


def test_c_that_pastes_its_way_to_assembly_or_the_loader_fails(solution):
    """The rules read the source after the preprocessor, and the program links against
    nothing: a pasted asm, a computed include and dlsym all fail."""
    pasted = ('#define GLUE(a, b) a##b\nvoid conv2d(void) { GLUE(__as, m__)("nop"); }')
    with pytest.raises(CheckFailed, match="after the preprocessor"):
        C.check_c_conv(pasted, solution.conv2d_c)
    computed = '#define H <dlfcn.h>\n#include H\nvoid conv2d(void) { dlsym(0, "x"); }'
    with pytest.raises(CheckFailed, match="C_CONV"):
        C.check_c_conv(computed, solution.conv2d_c)
    loader = ('extern void *D##L(void *, const char *);\n'
              '#define LOOKUP(a, b) a##b\n'
              'void conv2d(void) { LOOKUP(dl, sym)(0, "PyRun_SimpleString"); }')
    with pytest.raises(CheckFailed, match="C_CONV"):
        C.check_c_conv(loader, solution.conv2d_c)


def test_an_empty_numba_kernel_beside_a_numpy_wrapper_fails(solution):
    """The kernel is called itself; NumPy's sliding windows are refused in the wrapper."""
    empty = defined(solution, LAB06["q3_numba"], "conv_kernel")
    windows = defined(solution, LAB06["q3_numba"], "conv2d_numba")
    with pytest.raises(CheckFailed, match="conv_kernel"):
        C.check_conv2d_numba(empty, solution.conv2d_numba)
    with pytest.raises(FAILS):
        C.check_conv2d_numba(solution.conv_kernel, windows)


def test_im2col_without_the_column_matrix_and_one_product_fails(solution):
    """Shift and add (no column matrix, no product), or one product per output channel."""
    shift_add = defined(solution, LAB06["q4_im2col"], "conv2d_im2col")

    def per_channel(x, w, b, stride, padding):
        cols = solution.im2col(x, w.shape[-1], stride, padding)
        P = (x.shape[1] + 2 * padding - w.shape[-1]) // stride + 1
        rows = [w[m].reshape(-1) @ cols + b[m] for m in range(w.shape[0])]
        return torch.stack(rows).reshape(w.shape[0], P, -1)
    for lazy in (shift_add, per_channel):
        with pytest.raises(CheckFailed, match="one matrix product"):
            C.check_im2col(solution.im2col, lazy)
