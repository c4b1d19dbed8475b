"""The Lab 05 checks accept the solution and reject wrong, lazy and hostile answers."""

import math

import pytest
import torch
from lazy import LAB05, defined
from scipy.stats import entropy as scipy_entropy
from torch.utils._python_dispatch import _disable_current_modes

from autograde.checks import lab05_quantization as C
from autograde.checks.api import CheckFailed, NotAnswered
from efflib.graded import GradedAnswerError
from efflib.quant import binary, huffman, linear

FAILS = (CheckFailed, GradedAnswerError)
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated")


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_float_format(solution.float_format, hidden)
    C.check_int_range(solution.int_range, hidden)
    C.check_scale_zero_point(solution.scale_zero_point, hidden)
    C.check_linear_quantize(solution.linear_quantize, hidden)
    C.check_quantization_mse(solution.quantization_mse, hidden)
    C.check_kmeans_quantize(solution.kmeans_quantize, hidden)
    C.check_centroid_gradient(solution.centroid_gradient, hidden)
    C.check_huffman_lengths(solution.huffman_code_lengths, hidden)
    C.check_pipeline_bytes(solution.pipeline_bytes, hidden)
    C.check_binary_ternary(solution.binarize, solution.ternarize, hidden)
    C.check_fake_quant(solution.fake_quant_forward, solution.fake_quant_backward, hidden)
    C.check_quantized_multiplier(solution.quantized_multiplier, hidden)
    C.check_int_conv2d(solution.int_conv2d, hidden)
    C.check_fold_batchnorm(solution.fold_batchnorm, hidden)
    C.check_entropy_bins(solution.entropy_bins, hidden)


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("check", [C.check_float_format, C.check_int_range,
                                   C.check_scale_zero_point, C.check_linear_quantize,
                                   C.check_quantization_mse, C.check_kmeans_quantize,
                                   C.check_centroid_gradient, C.check_huffman_lengths,
                                   C.check_pipeline_bytes, C.check_quantized_multiplier,
                                   C.check_int_conv2d, C.check_fold_batchnorm,
                                   C.check_entropy_bins])
def test_blank_answers_fail_clearly(check):
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        check(not_implemented)


def test_float_format_without_the_reserved_exponent_fails(solution):
    def no_inf(e, m):  # forgets that the all-ones exponent is kept for inf and NaN
        bias = 2 ** (e - 1) - 1
        return (2 - 2.0**-m) * 2.0 ** (2**e - 1 - bias), 2.0**-m, 2.0 ** (1 - bias)
    with pytest.raises(CheckFailed, match="largest is wrong"):
        C.check_float_format(no_inf)
    with pytest.raises(CheckFailed, match="qmax"):
        C.check_int_range(lambda b, s: (-(2 ** (b - 1)), 2 ** (b - 1)) if s else (0, 2**b))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16,
                                   torch.bfloat16, torch.float8_e5m2])
def test_the_ieee_rule_of_the_check_is_torchs(dtype):
    """The reference for formats torch lacks agrees with torch.finfo wherever torch has one."""
    e, m = {**C.FLOATS, **C.HIDDEN_FLOATS}[dtype]
    info = torch.finfo(dtype)
    assert C.ieee_format(e, m) == (info.max, info.eps, info.tiny)


def test_torch_finfo_is_no_answer_to_float_format():
    """An answer that looks the format up in torch.finfo, computing nothing from e and m."""
    known = {(8, 23): torch.float32, (5, 10): torch.float16, (8, 7): torch.bfloat16,
             (11, 52): torch.float64, (5, 2): torch.float8_e5m2, (4, 3): torch.float8_e4m3fn}

    def looked_up(e, m):
        info = torch.finfo(known.get((e, m), torch.float32))
        return info.max, info.eps, info.tiny
    with pytest.raises(CheckFailed, match="IEEE-style float"):
        C.check_float_format(looked_up)


def test_quantize_mistakes_fail(solution):
    def floors(x, s, z, bits, signed):
        lo, hi = solution.int_range(bits, signed)
        return torch.clamp(torch.floor(x / s).long() + z, lo, hi)

    def no_clamp(x, s, z, bits, signed):
        return torch.round(x / s).long() + z

    def half_up(x, s, z, bits, signed):
        lo, hi = solution.int_range(bits, signed)
        return torch.clamp(torch.floor(x / s + 0.5).long() + z, lo, hi)
    for wrong in (floors, no_clamp, half_up):
        with pytest.raises(CheckFailed, match="linear_quantize"):
            C.check_linear_quantize(wrong)

    def range_without_zero(x, bits, signed, symmetric):
        lo, hi = solution.int_range(bits, signed)
        s = (float(x.max()) - float(x.min())) / (hi - lo)
        return s, lo - round(float(x.min()) / s)
    with pytest.raises(CheckFailed, match="scale_zero_point"):
        C.check_scale_zero_point(range_without_zero)


def test_hostile_quantize_answers_fail(solution):
    def torchs_own(x, s, z, bits, signed):
        return torch.quantize_per_tensor(x, s, z, torch.quint8 if not signed else torch.qint8)

    def torchs_integers(x, s, z, bits, signed):
        return torch.fake_quantize_per_tensor_affine(x, s, z, *solution.int_range(bits, signed))

    def efflibs(x, s, z, bits, signed):
        return linear.quantize(x, s, z, linear.QuantSpec(bits, signed))

    class Anything(torch.Tensor):
        def __eq__(self, other):
            return torch.ones_like(other, dtype=torch.bool)

    def liar(x, s, z, bits, signed):
        return torch.zeros_like(x).long().as_subclass(Anything)
    for hostile in (torchs_own, torchs_integers, efflibs, liar):
        with pytest.raises(FAILS):
            C.check_linear_quantize(hostile)


def test_torchs_quantizer_with_the_watch_switched_off_inside_the_answer_fails(solution):
    """Issue 27: the answer switches torch's refusals off while it runs; the operations it
    ran, replayed on new inputs, show a constant in place of the integers."""
    def modes_off(x, s, z, bits, signed):
        lo, hi = solution.int_range(bits, signed)
        with torch._C.DisableTorchFunction(), _disable_current_modes():
            q = torch.quantize_per_tensor(x.float(), float(s), 0, torch.qint32).int_repr()
        return torch.clamp(q.long() + z, lo, hi)
    with pytest.raises(CheckFailed, match="does not follow from the inputs"):
        C.check_linear_quantize(modes_off)


def test_torchs_fake_quantize_with_the_watch_switched_off_inside_the_answer_fails(solution):
    """Issue 27: Q8's forward and backward, each taken from torch's fake-quantize with the
    refusals switched off inside the answer, fail on the replayed operations."""
    def forward_off(x, s, z, qmin, qmax):
        with torch._C.DisableTorchFunction(), _disable_current_modes():
            return torch.fake_quantize_per_tensor_affine(x, s, z, qmin, qmax)

    def backward_off(grad, x, s, z, qmin, qmax):
        with torch._C.DisableTorchFunction(), _disable_current_modes():
            xr = x.clone().requires_grad_()
            torch.fake_quantize_per_tensor_affine(xr, s, z, qmin, qmax).backward(grad)
        return xr.grad * 1
    with pytest.raises(CheckFailed, match="fake_quant_forward.*does not follow"):
        C.check_fake_quant(forward_off, solution.fake_quant_backward)
    with pytest.raises(CheckFailed, match="fake_quant_backward.*does not follow"):
        C.check_fake_quant(solution.fake_quant_forward, backward_off)

    def backward_by_where(grad, x, s, z, qmin, qmax):  # honest, spelt otherwise
        q = torch.round(x / s) + z
        out = grad.clone()
        out[(q < qmin) | (q > qmax)] = 0
        return torch.where(q > qmax, torch.zeros_like(grad), out)
    C.check_fake_quant(solution.fake_quant_forward, backward_by_where, hidden=True)


def test_honest_quantizers_in_other_spellings_pass(solution):
    """In-place rounding, torch.where and torch.clip replay as well as the solution's."""
    def in_place(x, s, z, bits, signed):
        lo, hi = solution.int_range(bits, signed)
        q = (x / s).round_() + z
        q = torch.where(q > hi, torch.tensor(hi), q)
        return torch.where(q < lo, torch.tensor(lo), q).long()

    def clipped(x, s, z, bits, signed):
        lo, hi = solution.int_range(bits, signed)
        q = torch.round(x * (1 / s))
        q += z
        return torch.clip(q, lo, hi).to(torch.int32)
    for honest in (in_place, clipped):
        C.check_linear_quantize(honest, hidden=True)


def test_mse_mistakes_fail(solution):
    with pytest.raises(CheckFailed, match="per output channel"):
        C.check_quantization_mse(lambda w, b, pc: solution.quantization_mse(w, b, False))
    with pytest.raises(FAILS):
        C.check_quantization_mse(lambda w, b, pc: linear.quantization_error(
            w, linear.QuantSpec(b, True, True), 0 if pc else None))


def test_kmeans_mistakes_fail(solution):
    def one_step(w, bits):  # assigns once, never iterates
        x = w.reshape(-1).double()
        c = torch.linspace(float(x.min()), float(x.max()), 2**bits, dtype=torch.float64)
        return c, torch.argmin((x[:, None] - c[None]).abs(), 1).reshape(w.shape)

    def random_start(w, bits):
        x = w.reshape(-1).double()
        c = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:2**bits]]
        for _ in range(50):
            idx = torch.argmin((x[:, None] - c[None]).abs(), 1)
            c = torch.stack([x[idx == j].mean() if (idx == j).any() else c[j]
                             for j in range(len(c))])
        return c, idx.reshape(w.shape)

    def too_few(w, bits):
        c, idx = solution.kmeans_quantize(w, bits)
        return c[:-1], idx.clamp(max=len(c) - 2)
    with pytest.raises(CheckFailed, match="mean of its weights|nearest"):
        C.check_kmeans_quantize(one_step)
    with pytest.raises(CheckFailed, match="worse than it should be"):
        C.check_kmeans_quantize(random_start)
    with pytest.raises(CheckFailed, match="shape"):
        C.check_kmeans_quantize(too_few)


def test_centroid_gradient_through_efflib_fails():
    """efflib.quant.kmeans.centroid_grad is Q5's answer: an answer that calls it fails."""
    from efflib.quant.kmeans import centroid_grad

    with pytest.raises(GradedAnswerError, match="centroid_grad"):
        C.check_centroid_gradient(centroid_grad)


def test_centroid_gradient_mean_instead_of_sum_fails():
    def mean(grad, idx, k):
        s = torch.zeros(k).index_add_(0, idx.reshape(-1), grad.reshape(-1))
        return s / torch.bincount(idx.reshape(-1), minlength=k).clamp(min=1)
    with pytest.raises(CheckFailed, match="sum"):
        C.check_centroid_gradient(mean)


def test_huffman_mistakes_fail(solution):
    def fixed_length(counts):
        used = [s for s, c in counts.items() if c]
        return {s: max(1, math.ceil(math.log2(len(used)))) for s in used}

    def too_short(counts):
        return {s: 1 for s, c in counts.items() if c}
    with pytest.raises(CheckFailed, match="optimal code costs less"):
        C.check_huffman_lengths(fixed_length)
    with pytest.raises(CheckFailed, match="Kraft"):
        C.check_huffman_lengths(too_short)
    with pytest.raises(GradedAnswerError):
        C.check_huffman_lengths(huffman.code_lengths)

    def no_table(w, sparsity, bits):
        return solution.pipeline_bytes(w, sparsity, bits) - 2**bits * 4
    with pytest.raises(CheckFailed, match="pipeline_bytes"):
        C.check_pipeline_bytes(no_table)


def test_binary_mistakes_fail(solution):
    with pytest.raises(CheckFailed, match="binarize"):
        C.check_binary_ternary(torch.sign, solution.ternarize)

    def per_tensor(w):
        return torch.where(w >= 0, w.abs().mean(), -w.abs().mean())
    with pytest.raises(CheckFailed, match="binarize"):
        C.check_binary_ternary(per_tensor, solution.ternarize)

    def alpha_over_all(w):  # the mean |w| of every weight, not of the kept ones
        t = solution.ternarize(w)
        return torch.sign(t) * w.abs().reshape(w.shape[0], -1).mean(1).reshape(
            -1, *[1] * (w.dim() - 1))
    with pytest.raises(CheckFailed, match="ternarize"):
        C.check_binary_ternary(solution.binarize, alpha_over_all)
    with pytest.raises(GradedAnswerError):
        C.check_binary_ternary(binary.binarize, solution.ternarize)


def test_fake_quant_mistakes_fail(solution):
    def identity_grad(grad, x, s, z, lo, hi):
        return grad
    with pytest.raises(CheckFailed, match="fake_quant_backward"):
        C.check_fake_quant(solution.fake_quant_forward, identity_grad)

    def forgets_zero_point(x, s, z, lo, hi):
        return torch.clamp(torch.round(x / s), lo, hi) * s
    with pytest.raises(CheckFailed, match="fake_quant_forward"):
        C.check_fake_quant(forgets_zero_point, solution.fake_quant_backward)

    def torchs(x, s, z, lo, hi):
        return torch.fake_quantize_per_tensor_affine(x, s, z, lo, hi)
    with pytest.raises(CheckFailed, match="calls torch's fake_quantize"):
        C.check_fake_quant(torchs, solution.fake_quant_backward)


def test_integer_conv_mistakes_fail(solution):
    def float_rescale(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding):
        acc = torch.nn.functional.conv2d((q_x - z_x).double(), q_w.double(), None, stride,
                                         padding) + q_b.reshape(1, -1, 1, 1)
        m = (m0.double() * 2.0 ** (-31 - shift)).reshape(1, -1, 1, 1)
        return torch.clamp(torch.round(acc * m) + z_y, z_y if relu else 0, 255).long()

    def pads_with_zero(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding):
        padded = torch.nn.functional.pad(q_x, [padding] * 4)
        return solution.int_conv2d(padded, z_x, q_w, q_b, m0, shift, z_y, relu, stride, 0)

    def no_relu(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding):
        return solution.int_conv2d(q_x, z_x, q_w, q_b, m0, shift, z_y, False, stride, padding)
    for wrong in (float_rescale, pads_with_zero, no_relu):
        with pytest.raises(CheckFailed, match="int_conv2d"):
            C.check_int_conv2d(wrong, hidden=True)

    def truncates(m):
        mantissa, e = math.frexp(m)
        return int(mantissa * 2**31), -e
    with pytest.raises(CheckFailed, match="m0"):
        C.check_quantized_multiplier(truncates, hidden=True)


# --- mistakes the visible cases show, not only the hidden ones (issue: every point needs
# its skill; a student who sees every visible check pass loses nothing for them) -----------

def test_a_range_not_widened_to_zero_fails_visibly(solution):
    """Data of one sign only: the range must still be widened to hold 0."""
    def no_widen(x, bits, signed, symmetric):
        lo, hi = solution.int_range(bits, signed)
        if symmetric:
            return solution.scale_zero_point(x, bits, signed, symmetric)
        s = (float(x.max()) - float(x.min())) / (hi - lo)
        return s, int(max(lo, min(hi, round(lo - float(x.min()) / s))))
    with pytest.raises(CheckFailed, match="widened to include 0"):
        C.check_scale_zero_point(no_widen)


def test_fake_quantize_rounding_halves_away_from_zero_fails_visibly(solution):
    def half_away(x, scale, zp, qmin, qmax):
        q = torch.sign(x / scale) * torch.floor(torch.abs(x / scale) + 0.5) + zp
        return (torch.clamp(q, qmin, qmax) - zp) * scale
    with pytest.raises(CheckFailed, match="fake_quant_forward"):
        C.check_fake_quant(half_away, solution.fake_quant_backward)


def test_efflibs_private_fake_quantize_is_refused_too(solution):
    def private_twin(x, scale, zp, qmin, qmax):
        from efflib.quant.linear import _FakeQuantize
        return _FakeQuantize.apply(x, torch.tensor(scale), torch.tensor(float(zp)), qmin,
                                   qmax, None)
    with pytest.raises(GradedAnswerError, match="efflib.quant.linear._FakeQuantize.forward"):
        C.check_fake_quant(private_twin, solution.fake_quant_backward)


def test_kmeans_from_another_start_fails_visibly(solution):
    """Quantile (density) initialisation converges, to other centroids."""
    density = defined(solution, LAB05["q4_kmeans"], "kmeans_quantize")
    with pytest.raises(CheckFailed, match="kmeans_quantize"):
        C.check_kmeans_quantize(density)


def test_the_ties_case_holds_halves_of_both_signs():
    """The fixed case that shows a rounding other than the formula's has exact halves of
    both signs, and nothing saturates."""
    layer, qx = C.ties_case()
    acc = torch.nn.functional.conv2d((qx - layer.x.zero_point).double(), layer.weight.double(),
                                     padding=1)
    assert bool((acc % 4 == 2).any()) and bool(((acc < 0) & (acc % 4 == 2)).any())
    y = layer(qx)
    assert int(y.min()) > 0 and int(y.max()) < 255


@pytest.mark.parametrize("rounding", ["half to even", "half away from zero"])
def test_integer_conv_rounding_other_than_the_formulas_fails_visibly(rounding):
    def conv(q_x, z_x, q_w, q_b, m0, shift, z_y, relu, stride, padding):
        acc = torch.nn.functional.conv2d((q_x - z_x).double(), q_w.double(), None, stride,
                                         padding).round().long() + q_b.reshape(1, -1, 1, 1)
        exact = acc.double() * m0.reshape(1, -1, 1, 1).double() / 2.0 ** (
            31 + shift.reshape(1, -1, 1, 1).double())
        y = torch.round(exact) if rounding == "half to even" else \
            torch.sign(exact) * torch.floor(exact.abs() + 0.5)
        return torch.clamp(y.long() + z_y, z_y if relu else 0, 255)
    with pytest.raises(CheckFailed, match="int_conv2d"):
        C.check_int_conv2d(conv)


def test_a_multiplier_rounded_half_away_fails_visibly():
    def half_away(m):
        mantissa, exponent = math.frexp(m)
        m0 = math.floor(mantissa * 2**31 + 0.5)
        if m0 == 2**31:
            m0, exponent = m0 // 2, exponent + 1
        return m0, -exponent
    with pytest.raises(CheckFailed, match="m0"):
        C.check_quantized_multiplier(half_away)


# --- Q10 and Q11 ------------------------------------------------------------------------

def _factor(gamma, var, eps):
    return gamma / torch.sqrt(var + eps)


FOLD_MISTAKES = {
    "unchanged": lambda w, b, mean, var, gamma, beta, eps: (
        w, b if b is not None else torch.zeros_like(mean)),
    "no eps": lambda w, b, mean, var, gamma, beta, eps: (
        w * (gamma / var.sqrt()).reshape(-1, *[1] * (w.dim() - 1)),
        beta - mean * gamma / var.sqrt() + (0 if b is None else b * gamma / var.sqrt())),
    "layer bias dropped": lambda w, b, mean, var, gamma, beta, eps: (
        w * _factor(gamma, var, eps).reshape(-1, *[1] * (w.dim() - 1)),
        beta - mean * _factor(gamma, var, eps)),
    "bias not scaled": lambda w, b, mean, var, gamma, beta, eps: (
        w * _factor(gamma, var, eps).reshape(-1, *[1] * (w.dim() - 1)),
        beta + (0 if b is None else b) - mean * _factor(gamma, var, eps)),
}


@pytest.mark.parametrize("mistake", FOLD_MISTAKES)
def test_fold_mistakes_fail_on_the_visible_cases(mistake):
    with pytest.raises(CheckFailed, match="fold_batchnorm"):
        C.check_fold_batchnorm(FOLD_MISTAKES[mistake])


def test_a_fold_that_scales_input_channels_fails():
    """The factor belongs to the output channel (dim 0), not the input one (dim 1)."""
    def by_input(w, b, mean, var, gamma, beta, eps):
        f = gamma / torch.sqrt(var + eps)
        shape = (1, -1) + (1,) * (w.dim() - 2)
        scaled = w * f[: w.shape[1]].reshape(shape) if w.shape[1] <= len(f) else w
        return scaled, beta + ((0 if b is None else b) - mean) * f
    with pytest.raises(CheckFailed, match="fold_batchnorm"):
        C.check_fold_batchnorm(by_input)


def test_torchs_own_fold_and_batch_norm_are_refused():
    from efflib.quant import integer

    def fusion(w, b, mean, var, gamma, beta, eps):
        from torch.nn.utils.fusion import fuse_conv_bn_weights
        return fuse_conv_bn_weights(w, b, mean, var, eps, gamma, beta)

    def by_batch_norm(w, b, mean, var, gamma, beta, eps):  # bn applied to the weights
        scaled = torch.nn.functional.batch_norm(w.unsqueeze(0).transpose(0, 1).reshape(
            1, w.shape[0], -1), torch.zeros_like(mean), var, gamma, None, False, 0.0, eps)
        b0 = torch.zeros_like(mean) if b is None else b
        return scaled.reshape(w.shape), beta + (b0 - mean) * gamma / (var + eps).sqrt()

    def by_efflib(w, b, mean, var, gamma, beta, eps):
        conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], bias=b is not None)
        bn = torch.nn.BatchNorm2d(w.shape[0], eps=eps).eval()
        with torch.no_grad():
            conv.weight.copy_(w)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(gamma)
            bn.bias.copy_(beta)
            if b is not None:
                conv.bias.copy_(b)
        folded = integer.fold_bn(conv, bn)
        return folded.weight.detach(), folded.bias.detach()
    for wrong in (fusion, by_batch_norm, by_efflib):
        with pytest.raises(FAILS):
            C.check_fold_batchnorm(wrong)


def test_entropy_mistakes_fail_on_the_visible_cases():
    def min_max(hist, levels):
        return len(hist)

    def percentile(hist, levels):  # the 99.99th percentile's bin
        c = hist.cumsum(0) / hist.sum()
        return max(levels, int((c < 0.9999).sum()) + 1)

    def no_clipped_mass(hist, levels):  # P without the values beyond the cut
        return _entropy(hist, levels, clip=False, empty=True)

    def empty_bins_filled(hist, levels):  # Q spread over every bin of a level
        return _entropy(hist, levels, clip=True, empty=False)
    for wrong in (min_max, percentile, no_clipped_mass):
        with pytest.raises(CheckFailed, match="entropy_bins"):
            C.check_entropy_bins(wrong)
    with pytest.raises(CheckFailed, match="entropy_bins"):
        C.check_entropy_bins(empty_bins_filled, hidden=True)


def _entropy(hist, levels, clip: bool, empty: bool) -> int:
    """The rule with one part changed: P without the clipped values, or Q filling its
    empty bins too."""
    hist = hist.double()
    best, best_kl = levels, math.inf
    for i in range(levels, len(hist) + 1):
        p = hist[:i].clone()
        if clip:
            p[-1] += hist[i:].sum()
        q = torch.zeros(i, dtype=torch.float64)
        for j in range(levels):
            lo, hi = j * i // levels, (j + 1) * i // levels
            part = hist[lo:hi]
            use = part > 0 if empty else torch.ones_like(part, dtype=torch.bool)
            if use.any():
                q[lo:hi] = torch.where(use, part.sum() / use.sum(), 0.0)
        if p.sum() > 0 and not bool(((p > 0) & (q == 0)).any()):
            divergence = float(scipy_entropy(p.numpy(), q.numpy()))  # normalises both
            best, best_kl = (i, divergence) if divergence < best_kl else (best, best_kl)
    return best


def test_the_rule_read_level_by_level_passes_every_case():
    """The check's reference is the rule as the lab states it, not the solution's spelling."""
    C.check_entropy_bins(lambda h, lv: _entropy(h, lv, clip=True, empty=True), hidden=True)


def test_efflibs_kl_per_cut_is_refused():
    """efflib.quant.calibration's KL of every cut holds Q11's answer in its argmin."""
    from efflib.quant.calibration import kl_divergences
    with pytest.raises(FAILS):
        C.check_entropy_bins(lambda hist, levels: int(kl_divergences(hist, levels).argmin()))
