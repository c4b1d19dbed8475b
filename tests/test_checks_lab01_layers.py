"""The Lab 01 checks accept the solution and reject wrong, lazy and hostile answers."""

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes

import efflib
from autograde.checks import lab01_layers as C
from autograde.checks.api import CheckFailed, NotAnswered, as_float, as_int
from autograde.checks.lab01_layers import MODES
from efflib.graded import GradedAnswerError

FAILS = (CheckFailed, GradedAnswerError)


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_linear_forward(solution.linear_forward, hidden)
    C.check_conv_output_size(solution.conv_output_size, hidden)
    C.check_conv_transpose_output_size(solution.conv_transpose_output_size, hidden)
    C.check_decoder_sizes(solution.decoder_sizes)
    C.check_pad2d(solution.pad2d, hidden)
    C.check_receptive_field(solution.receptive_field, hidden)
    C.check_conv_weight_shape(solution.conv_weight_shape, hidden)
    C.check_factorised_params(solution.factorised_params, hidden)
    C.check_conv2d_einsum(solution.conv2d_einsum, hidden)
    C.check_normalize(solution.normalize, hidden)
    for name in C.ACTIVATIONS:
        C.check_activation(name, getattr(solution, name), hidden)
    C.check_pool2d("max", solution.max_pool2d, hidden)
    C.check_pool2d("avg", solution.avg_pool2d, hidden)


def test_tanh_by_its_textbook_formula_overflows_and_fails():
    """(e^x - e^-x) / (e^x + e^-x) is NaN at |x| = 100 in float32; the check tries it."""
    def direct(x):
        return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
    assert torch.allclose(direct(torch.linspace(-8, 8, 9)), torch.tanh(torch.linspace(-8, 8, 9)))
    with pytest.raises(CheckFailed, match="NaN"):
        C.check_activation("tanh", direct)


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


def test_blank_answer_fails_with_a_clear_message():
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        C.check_conv_output_size(not_implemented)


# --- wrong answers ------------------------------------------------------------------

def test_linear_without_bias_or_transpose_fails():
    with pytest.raises(CheckFailed, match="values differ"):
        C.check_linear_forward(lambda x, W, b: x @ W.T)
    with pytest.raises(CheckFailed):
        C.check_linear_forward(lambda x, W, b: x @ W + b)


def test_conv_size_mistakes_fail_with_case_and_values():
    no_floor = lambda size, kernel, stride=1, padding=0, dilation=1: (  # noqa: E731
        (size + 2 * padding - kernel) / stride + 1)
    with pytest.raises(CheckFailed, match=r"should be an int, got float 55.25 \(use //"):
        C.check_conv_output_size(no_floor)
    no_dilation = lambda size, kernel, stride=1, padding=0, dilation=1: (  # noqa: E731
        (size + 2 * padding - kernel) // stride + 1)
    with pytest.raises(CheckFailed, match=r"dilation=2\): expected 5, got 7.*d\*\(k-1\)\+1"):
        C.check_conv_output_size(no_dilation)


def test_visible_cases_alone_cannot_pass_hidden(solution):
    """Answers hard-coded to the visible cases are caught by the hidden random ones."""
    visible = {}
    real = solution.conv_output_size

    def memorise(*a, **k):
        visible[tuple(sorted(k.items()))] = real(*a, **k)
        return visible[tuple(sorted(k.items()))]

    C.check_conv_output_size(memorise)
    lookup = lambda **k: visible.get(tuple(sorted(k.items())), 1)  # noqa: E731
    C.check_conv_output_size(lookup)
    with pytest.raises(CheckFailed):
        C.check_conv_output_size(lookup, hidden=True)


def test_transpose_size_mistake_fails():
    wrong = lambda size, kernel, stride=1, padding=0, output_padding=0, dilation=1: (  # noqa
        (size - 1) * stride + kernel)
    with pytest.raises(CheckFailed, match="conv_transpose_output_size"):
        C.check_conv_transpose_output_size(wrong)


def test_decoder_sizes_wrong_or_short():
    """The message says which size is off and how to find it, never the size itself."""
    with pytest.raises(CheckFailed, match=r"decoder_sizes\[2\].*got 31, which is too low") as e:
        C.check_decoder_sizes([8, 16, 31])
    assert "32" not in str(e.value)
    with pytest.raises(CheckFailed, match="should list 3 sizes"):
        C.check_decoder_sizes([8, 16])


def test_pad_reflect_confused_with_symmetric_fails(solution):
    def symmetric(x, p, mode="zeros"):
        if mode == "reflect":  # repeats the edge: that is 'symmetric' padding, not reflection
            h, w = x.shape[-2:]
            rows = list(range(p - 1, -1, -1)) + list(range(h)) + list(range(h - 1, h - 1 - p, -1))
            cols = list(range(p - 1, -1, -1)) + list(range(w)) + list(range(w - 1, w - 1 - p, -1))
            return x[:, :, rows][:, :, :, cols]
        return solution.pad2d(x, p, mode)

    with pytest.raises(CheckFailed, match="reflect"):
        C.check_pad2d(symmetric)


def test_pad_must_reject_unknown_mode(solution):
    def lenient(x, p, mode="zeros"):
        return solution.pad2d(x, p, mode if mode in C.MODES else "zeros")

    with pytest.raises(CheckFailed, match="unknown mode: expected ValueError"):
        C.check_pad2d(lenient)


def test_receptive_field_ignoring_stride_fails():
    with pytest.raises(CheckFailed, match="Each layer adds"):
        C.check_receptive_field(lambda layers: 1 + sum(k - 1 for k, _ in layers))


def test_weight_shape_ignoring_groups_fails():
    def no_groups(c_in, c_out, kernel, groups=1):
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        return (c_out, c_in, *k)

    with pytest.raises(CheckFailed, match="c_in/g"):
        C.check_conv_weight_shape(no_groups)


def test_shapes_and_counts_read_off_torchs_layers_fail():
    import torch.nn as nn

    def built(c_in, c_out, kernel, groups=1):
        return tuple(nn.Conv2d(c_in, c_out, kernel, groups=groups, device="meta").weight.shape)

    def counted(ci, co, k):
        with torch.device("meta"):
            designs = {"standard": nn.Conv2d(ci, co, k, bias=False),
                       "spatial": nn.Sequential(nn.Conv2d(ci, co, (1, k), bias=False),
                                                nn.Conv2d(co, co, (k, 1), bias=False)),
                       "separable": nn.Sequential(nn.Conv2d(ci, ci, k, groups=ci, bias=False),
                                                  nn.Conv2d(ci, co, 1, bias=False))}
        return {n: sum(p.numel() for p in m.parameters()) for n, m in designs.items()}

    for check, answer in ((C.check_conv_weight_shape, built),
                          (C.check_factorised_params, counted)):
        with pytest.raises(FAILS, match="formula, not for building"):
            check(answer)


def test_factorised_params_wrong_key_or_count(solution):
    with pytest.raises(CheckFailed, match="dict with keys"):
        C.check_factorised_params(lambda ci, co, k: {"standard": co * ci * k * k})

    def bad_separable(ci, co, k):
        return solution.factorised_params(ci, co, k) | {"separable": ci * co * k * k // ci}

    with pytest.raises(CheckFailed, match="'separable'"):
        C.check_factorised_params(bad_separable)


def test_normalize_with_unbiased_variance_fails():
    def unbiased(x, kind, num_groups=1, eps=1e-5):
        dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}[kind]
        return (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True) + eps).sqrt()

    with pytest.raises(CheckFailed, match="normalize"):
        C.check_normalize(unbiased)


def test_pool_ignoring_stride_default_fails(solution):
    with pytest.raises(CheckFailed, match="stride=None"):
        C.check_pool2d("max", lambda x, k, stride=None: solution.max_pool2d(x, k, stride or 1))


def test_tanh_wrong_scale_fails():
    with pytest.raises(CheckFailed, match="values differ"):
        C.check_activation("tanh", lambda x: 2 / (1 + torch.exp(-x)) - 1)


# --- answers that lean on torch or efflib ---------------------------------------------

@pytest.mark.parametrize("check,answer", [
    (C.check_linear_forward, lambda x, W, b: F.linear(x, W, b)),
    (C.check_linear_forward, lambda x, W, b: torch.nn.functional.linear(x, W) + b),
    (C.check_pad2d, lambda x, p, mode="zeros": F.pad(
        x, (p,) * 4, mode={"zeros": "constant"}.get(mode, mode))),
    (C.check_conv2d_einsum, lambda x, w, stride=1, padding=0: F.conv2d(
        x, w, stride=stride, padding=padding)),
    (C.check_conv2d_einsum, lambda x, w, stride=1, padding=0: torch.nn.functional.conv2d(
        x, w, stride=stride, padding=padding) + 0 * torch.einsum("i->i", torch.ones(1)).sum()),
    (C.check_normalize, lambda x, kind, num_groups=1, eps=1e-5: F.group_norm(
        x, num_groups, eps=eps)),
    (C.check_conv_output_size, lambda size, kernel, stride=1, padding=0, dilation=1:
        torch.nn.Conv1d(1, 1, kernel, stride, padding, dilation)(
            torch.zeros(1, 1, size)).shape[-1]),
])
def test_calling_the_torch_version_is_refused(check, answer):
    with pytest.raises(CheckFailed, match="write yourself"):
        check(answer)


def test_activation_calling_torch_is_refused():
    with pytest.raises(CheckFailed, match="torch's hardswish"):
        C.check_activation("hard_swish", F.hardswish)
    with pytest.raises(CheckFailed, match="torch's special_expit"):
        C.check_activation("sigmoid", lambda x: torch.special.expit(x))


def test_einsum_is_required(solution):
    def unfold_matmul(x, w, stride=1, padding=0):
        x = solution.pad2d(x, padding, "zeros") if padding else x
        r, s = w.shape[-2:]
        win = x.unfold(2, r, stride).unfold(3, s, stride)  # (N, C, P, Q, R, S)
        return (win.permute(0, 2, 3, 1, 4, 5).flatten(3) @ w.flatten(1).T).permute(0, 3, 1, 2)

    with pytest.raises(CheckFailed, match="never calls it"):
        C.check_conv2d_einsum(unfold_matmul)


def test_switching_the_torch_function_layer_off_does_not_hide_a_forbidden_op(solution):
    """torch._C.DisableTorchFunction skips the watch's function mode; the same refusal waits
    at the dispatcher (F.pad arrives there as constant_pad_nd, F.conv2d as convolution)."""
    def sneaky_pad(x, padding, mode):
        with torch._C.DisableTorchFunction():
            return F.pad(x, (padding,) * 4, mode={"zeros": "constant"}.get(mode, mode))
    with pytest.raises(CheckFailed, match="pad"):
        C.check_pad2d(sneaky_pad)

    def sneaky_conv(x, w, b=None, stride=1, padding=0):
        torch.einsum("i->i", torch.ones(1))  # "uses einsum"
        with torch._C.DisableTorchFunction():
            return F.conv2d(x, w, b, stride=stride, padding=padding)
    with pytest.raises(CheckFailed, match="convolution"):
        C.check_conv2d_einsum(sneaky_conv)


def _conv_out_of_sight(x, w, b=None, stride=1, padding=0):
    """F.conv2d with torch's function layer and every dispatch mode switched off."""
    torch.einsum("i->i", torch.ones(1))  # "uses einsum"
    with _disable_current_modes(), torch._C.DisableTorchFunction():
        return F.conv2d(x, w, b, stride=stride, padding=padding)


def _conv_in_numpy(x, w, b=None, stride=1, padding=0):
    """The convolution computed in NumPy, handed back as a tensor."""
    torch.einsum("i->i", torch.ones(1))
    xp = np.pad(x.numpy(), ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[-2:], axis=(2, 3))
    win = win[:, :, ::stride, ::stride]
    return torch.from_numpy(np.einsum("ncpqrs,mcrs->nmpq", win, w.numpy()).copy())


@pytest.mark.parametrize("answer", [_conv_out_of_sight, _conv_in_numpy])
def test_a_result_computed_out_of_sight_of_the_record_fails(answer):
    """Whatever switches the watch off, the grader replays what the function ran: a result
    made elsewhere is a constant of that record, and fresh inputs expose it."""
    with pytest.raises(CheckFailed, match="does not follow from the inputs"):
        C.check_conv2d_einsum(answer)


def test_a_watch_replaced_in_the_kernel_still_meets_the_refusal(watch_replaced):
    """The kernel's watch is the student's to break (issue 19, 7c); the refusal is read
    from the recorded operations, in the grader's process."""
    def conv(x, w, b=None, stride=1, padding=0):
        torch.einsum("i->i", torch.ones(1))
        return F.conv2d(x, w, b, stride=stride, padding=padding)
    with pytest.raises(CheckFailed, match="convolution"):
        C.check_conv2d_einsum(conv)
    with pytest.raises(CheckFailed, match="constant_pad_nd"):
        C.check_pad2d(lambda x, p, mode: F.pad(x, (p,) * 4, mode=MODES[mode]))
    with pytest.raises(CheckFailed, match="max_pool2d"):
        C.check_pool2d("max", lambda x, k, stride=None: F.max_pool2d(x, k, stride))


def test_honest_answers_in_other_styles_pass():
    """Loops over slices, writes into a fresh tensor, torch.where: all replayable."""
    def pad2d(x, p, mode):
        if mode not in MODES:
            raise ValueError(mode)
        h, w = x.shape[-2:]
        if mode == "zeros":
            out = x.new_zeros(*x.shape[:2], h + 2 * p, w + 2 * p)
            out[:, :, p:p + h, p:p + w] = x  # a write into a view of a fresh tensor
            return out

        def index(n):  # the source row (column) of each padded one: a constant tensor
            if mode == "reflect":
                return [abs(k) if k < n else 2 * (n - 1) - k for k in range(-p, n + p)]
            return [min(max(k, 0), n - 1) for k in range(-p, n + p)]
        return x[:, :, index(h)][:, :, :, index(w)]
    C.check_pad2d(pad2d, hidden=True)
    C.check_activation("relu", lambda x: torch.where(x > 0, x, torch.zeros_like(x)), True)

    def max_pool2d(x, kernel, stride=None):
        s = stride or kernel
        p, q = (x.shape[2] - kernel) // s + 1, (x.shape[3] - kernel) // s + 1
        out = torch.full((*x.shape[:2], p, q), float("-inf"))
        for i in range(kernel):
            for j in range(kernel):
                out = torch.maximum(out, x[:, :, i:i + s * (p - 1) + 1:s, j:j + s * (q - 1) + 1:s])
        return out
    C.check_pool2d("max", max_pool2d, hidden=True)
    C.check_linear_forward(lambda x, W, b: (x[:, None, :] * W[None]).sum(-1) + b, hidden=True)
    C.check_activation("sigmoid", lambda x: 1 / (1 + torch.exp(-x)), hidden=True)
    C.check_activation("gelu", lambda x: 0.5 * x * (1 + torch.erf(x / 2 ** 0.5)), hidden=True)

    def normalize(x, kind, num_groups=1, eps=1e-5):
        dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (2,)}
        if kind not in dims:
            raise ValueError(kind)
        y = x.reshape(x.shape[0], num_groups, -1) if kind == "group" else x
        mean = y.mean(dims[kind], keepdim=True)
        var = ((y - mean) ** 2).mean(dims[kind], keepdim=True)
        return ((y - mean) * torch.rsqrt(var + eps)).reshape(x.shape)
    C.check_normalize(normalize, hidden=True)


@pytest.mark.parametrize("check,answer", [
    (C.check_conv_output_size, efflib.conv_output_size),
    (C.check_conv_output_size, lambda *a, **k: efflib.shapes.conv_output_size(*a, **k)),
    (C.check_conv_output_size, lambda size, kernel, stride=1, padding=0, dilation=1:
        efflib.shapes.pool_output_size(size, kernel, stride, padding, dilation)),
    (C.check_conv_transpose_output_size, efflib.conv_transpose_output_size),
    (C.check_receptive_field, efflib.receptive_field),
    (C.check_receptive_field, lambda layers: efflib.receptive_fields(layers)[-1]),
    # the unguarded function is not one attribute away
    (C.check_conv_output_size, getattr(efflib.conv_output_size, "__wrapped__",
                                       efflib.conv_output_size)),
    (C.check_conv_output_size, inspect.unwrap(efflib.conv_output_size)),
])
def test_calling_efflib_reference_is_refused(check, answer):
    with pytest.raises(GradedAnswerError, match="yourself"):
        check(answer)


# --- hostile values -----------------------------------------------------------------

class AlwaysEqual(int):
    """An int whose == always says yes."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class Liar:
    def __eq__(self, other):
        return True

    def __int__(self):
        return 0


class LyingTensor(torch.Tensor):
    """A tensor subclass whose comparisons and torch calls always agree."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func.__name__ in ("allclose", "equal", "isclose"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def test_always_equal_int_cannot_pass():
    with pytest.raises(CheckFailed, match="expected 55, got 0"):
        C.check_conv_output_size(lambda *a, **k: AlwaysEqual(0))
    with pytest.raises(CheckFailed, match="should be an int, got Liar"):
        C.check_conv_output_size(lambda *a, **k: Liar())
    with pytest.raises(CheckFailed, match="should be an int, got bool"):
        C.check_receptive_field(lambda layers: True)


def test_always_equal_in_containers_cannot_pass():
    with pytest.raises(CheckFailed):
        C.check_decoder_sizes([AlwaysEqual(0)] * 3)
    with pytest.raises(CheckFailed):
        C.check_factorised_params(lambda ci, co, k: {
            "standard": AlwaysEqual(0), "spatial": AlwaysEqual(0), "separable": AlwaysEqual(0)})
    with pytest.raises(CheckFailed):
        C.check_conv_weight_shape(lambda *a, **k: (AlwaysEqual(1),) * 4)


def test_lying_tensor_cannot_pass():
    with pytest.raises(CheckFailed, match="values differ"):
        C.check_linear_forward(lambda x, W, b: torch.zeros(x.shape[0], W.shape[0]).as_subclass(
            LyingTensor))


def test_nan_and_wrong_shape_are_reported():
    with pytest.raises(CheckFailed, match="NaN or inf"):
        C.check_linear_forward(lambda x, W, b: torch.full((x.shape[0], W.shape[0]), float("nan")))
    with pytest.raises(CheckFailed, match=r"expected shape \(2, 4\), got \(4, 2\)"):
        C.check_linear_forward(lambda x, W, b: (x @ W.T + b).T)


def test_plain_value_conversion():
    assert type(as_int(AlwaysEqual(7), "v")) is int and as_int(AlwaysEqual(7), "v") == 7
    assert as_int(torch.tensor(3), "v") == 3
    import numpy as np
    assert as_int(np.int64(5), "v") == 5
    assert type(as_float(np.float32(0.5), "v")) is float
    with pytest.raises(CheckFailed, match="integer, got a tensor of dtype torch.float32"):
        as_int(torch.tensor(3.0), "v")
