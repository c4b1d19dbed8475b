"""The Lab 02 checks accept the solution and reject wrong, lazy and hostile answers."""

import pytest
import torch
import torch.nn as nn
from conftest import judged_session
from torch.utils.flop_counter import FlopCounterMode

import efflib
from autograde.checks import lab02_metrics as C
from autograde.checks.api import CheckFailed, NotAnswered
from autograde.judging.judge import judge_cell
from autograde.judging.watch import Recorder, from_spec
from efflib.graded import GradedAnswerError

FAILS = (CheckFailed, GradedAnswerError)


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_linear_params(solution.linear_params, hidden)
    C.check_conv_params(solution.conv_params, hidden)
    C.check_model_size_bytes(solution.model_size_bytes, hidden)
    C.check_alexnet_mb(solution.alexnet_fp32_mb)
    C.check_linear_macs(solution.linear_macs, hidden)
    C.check_conv_macs(solution.conv_macs, hidden)
    C.check_activations(solution.total_activations, solution.peak_activations, hidden)
    C.check_alexnet_table(solution.alexnet_table)
    C.check_achieved_gflops(solution.achieved_gflops, hidden)
    C.check_hook_counter(solution.count_macs_with_hooks, hidden)
    C.check_throughput(solution.throughput, solution.design2_batch)
    C.check_roofline(solution.arithmetic_intensity, solution.roofline_seconds, hidden)
    C.check_energy(solution.energy_pj, hidden)


def not_implemented(*args, **kwargs):
    raise NotImplementedError()


def test_blank_answers_fail_clearly():
    with pytest.raises(NotAnswered, match="still raises NotImplementedError"):
        C.check_conv_params(not_implemented)
    with pytest.raises(NotAnswered, match="still None"):  # the lab's own starting value
        C.check_alexnet_mb(None)
    with pytest.raises(CheckFailed, match="alexnet_fp32_mb should be a number, got str"):
        C.check_alexnet_mb("240")
    with pytest.raises(CheckFailed, match="design2_batch should be an int"):
        C.check_throughput(lambda b, t: b / t, None)


# --- wrong answers ------------------------------------------------------------------

def test_conv_params_mistakes(solution):
    def no_groups(c_in, c_out, kernel, groups=1, bias=True):
        k = kernel if isinstance(kernel, int) else kernel[0]
        return c_out * c_in * k * k + (c_out if bias else 0)
    msg = r"groups=2, bias=False\): expected 307200, got 614400.*c_in / groups"
    with pytest.raises(CheckFailed, match=msg):
        C.check_conv_params(no_groups)

    def no_check(c_in, c_out, kernel, groups=1, bias=True):
        return solution.conv_params(c_in, c_out, kernel, 1, bias) if groups == 1 else (
            c_out * (c_in // groups) * kernel * kernel if isinstance(kernel, int) else
            c_out * (c_in // groups) * kernel[0] * kernel[1]) + (c_out if bias else 0)
    with pytest.raises(CheckFailed, match="expected ValueError"):
        C.check_conv_params(no_check)


def test_model_size_must_round_up_and_be_int():
    with pytest.raises(CheckFailed, match=r"model_size_bytes\(3, 4\): expected 2, got 1"):
        C.check_model_size_bytes(lambda n, b: n * b // 8)
    with pytest.raises(CheckFailed, match="should be an int"):
        C.check_model_size_bytes(lambda n, b: n * b / 8)
    with pytest.raises(CheckFailed, match="got 224, which is too low"):
        C.check_alexnet_mb(224.0)
    with pytest.raises(CheckFailed, match="within 0.1%"):  # the text asks for the decimals
        C.check_alexnet_mb(244)
    C.check_alexnet_mb(244.4)


def test_macs_mistakes():
    with pytest.raises(CheckFailed, match="batch=8"):
        C.check_linear_macs(lambda ci, co, batch=1: ci * co)
    def conv_no_groups(ci, co, k, ho, wo, groups=1, batch=1):
        kh, kw = (k, k) if isinstance(k, int) else k
        return batch * co * ho * wo * ci * kh * kw
    with pytest.raises(CheckFailed, match="groups=2"):
        C.check_conv_macs(conv_no_groups)
    def flops_not_macs(ci, co, k, ho, wo, groups=1, batch=1):
        kh, kw = (k, k) if isinstance(k, int) else k
        return 2 * batch * co * ho * wo * ci // groups * kh * kw
    with pytest.raises(CheckFailed, match="expected 105415200, got 210830400"):
        C.check_conv_macs(flops_not_macs)


def test_activation_mistakes(solution):
    def outputs_only(shapes):
        return sum(solution.numel(s) for s in shapes[1:])
    with pytest.raises(CheckFailed, match="total_activations.*input"):
        C.check_activations(outputs_only, solution.peak_activations)
    with pytest.raises(CheckFailed, match="peak_activations.*both alive"):
        C.check_activations(solution.total_activations,
                            lambda shapes: max(solution.numel(s) for s in shapes))


def test_alexnet_table_mistakes(solution):
    good = solution.alexnet_table()
    with pytest.raises(CheckFailed, match="list of 8 rows"):
        C.check_alexnet_table(lambda: good[:5])
    ungrouped = [dict(r) for r in good]
    ungrouped[1]["weights"] *= 2
    with pytest.raises(CheckFailed, match="conv2 weights: got 614,400, which is too high") as e:
        C.check_alexnet_table(lambda: ungrouped)
    assert "307" not in str(e.value)  # the row's right value is the answer: not shown
    missing = [dict(r) for r in good]
    del missing[0]["macs"]
    with pytest.raises(CheckFailed, match="conv1 has no 'macs'"):
        C.check_alexnet_table(lambda: missing)


def test_flops_confusions_fail():
    with pytest.raises(CheckFailed, match="two floating-point"):
        C.check_achieved_gflops(lambda macs, s: macs / s / 1e9)
    with pytest.raises(CheckFailed):
        C.check_roofline(lambda m, b: m / b, lambda f, b, p, w: max(f / p, b / w))
    with pytest.raises(CheckFailed, match="slower of computing"):
        C.check_roofline(lambda m, b: 2 * m / b, lambda f, b, p, w: f / p + b / w)
    with pytest.raises(CheckFailed, match="design2_batch: got 2, which is too low"):
        C.check_throughput(lambda b, t: b / t, 2)
    with pytest.raises(CheckFailed, match="energy_pj.*which is too low") as e:
        C.check_energy(lambda m, d, s=0: m * 3.7 + d * 640 + s * 5)
    assert "expected" not in str(e.value)  # the right energy would give the constants away


# --- lazy answers: build the layer, call a counter ----------------------------------

def test_building_the_layer_is_refused():
    def built(c_in, c_out, bias=True):
        layer = nn.Linear(c_in, c_out, bias=bias, device="meta")
        return sum(p.numel() for p in layer.parameters())
    with pytest.raises(CheckFailed, match="torch's empty, which is off limits.*formula"):
        C.check_linear_params(built)

    def flop_counted(ci, co, batch=1):
        with FlopCounterMode(display=False) as c:
            torch.nn.functional.linear(torch.empty(batch, ci, device="meta"),
                                       torch.empty(co, ci, device="meta"))
        return c.get_total_flops() // 2
    with pytest.raises(CheckFailed, match="formula"):
        C.check_linear_macs(flop_counted)


def test_efflib_counters_are_refused():
    def via_size(n, bits):
        return efflib.model_size([("w", torch.zeros(0))], bits) + (n * bits + 7) // 8
    with pytest.raises(FAILS, match="efflib|formula"):
        C.check_model_size_bytes(via_size)

    def via_profile(model, x):
        return efflib.profile(model, x).macs
    with pytest.raises(GradedAnswerError, match="efflib.profiler.profile"):
        C.check_hook_counter(via_profile)

    def via_roofline(f, b, p, w):
        from efflib.roofline import Machine, roofline_time
        return roofline_time(f, b, Machine(p / 1e9, w / 1e9, 1))
    with pytest.raises(GradedAnswerError, match="roofline"):
        C.check_roofline(lambda m, b: 2 * m / b, via_roofline)


def test_flop_counter_mode_is_refused_in_q7():
    def via_mode(model, x):
        with FlopCounterMode(display=False) as c:
            model(x)
        return c.get_total_flops() // 2
    with pytest.raises(CheckFailed, match="forward hooks"):
        C.check_hook_counter(via_mode)
    # and the check puts FlopCounterMode back afterwards
    with FlopCounterMode(display=False) as c:
        torch.ones(2, 2) @ torch.ones(2, 2)
    assert c.get_total_flops() == 16


def without_finally(solution):
    """A counter whose hooks come off after the forward pass, but not when it raises."""
    def count(model, x):
        handles = [m.register_forward_hook(lambda *a: None) for m in model.modules()]
        model(x)
        for h in handles:
            h.remove()
        return solution.count_macs_with_hooks(model, x)
    return count


def test_hooks_left_behind_or_functional_ops_counted(solution):
    def leaves_hooks(model, x):
        total = 0
        def hook(m, i, o):
            nonlocal total
            total += o.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        def lin(m, i, o):
            nonlocal total
            total += o.numel() * m.in_features
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(hook)
            elif isinstance(m, nn.Linear):
                m.register_forward_hook(lin)
        model(x)
        return total
    with pytest.raises(CheckFailed, match="still registered"):
        C.check_hook_counter(leaves_hooks)

    with pytest.raises(CheckFailed, match="after the model raised"):
        C.check_hook_counter(without_finally(solution))
    assert C.check_hook_counter(solution.count_macs_with_hooks) is None

    def with_matmul(model, x):
        return solution.count_macs_with_hooks(model, x) + 10 * 10 * x.shape[0]
    with pytest.raises(CheckFailed, match="functional @ is invisible"):
        C.check_hook_counter(with_matmul)


# --- hostile answers ----------------------------------------------------------------

class AlwaysEqual(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Liar(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__


def test_always_equal_values_do_not_pass():
    with pytest.raises(CheckFailed):
        C.check_linear_params(lambda ci, co, bias=True: AlwaysEqual(0))
    with pytest.raises(CheckFailed):
        C.check_achieved_gflops(lambda m, s: Liar(0.0))
    with pytest.raises(CheckFailed):
        C.check_throughput(lambda b, t: b / t, AlwaysEqual(0))

    class Anything:
        def __eq__(self, other):
            return True
    with pytest.raises(CheckFailed, match="should be an int"):
        C.check_conv_macs(lambda *a, **k: Anything())
    with pytest.raises(CheckFailed, match="should be a dict"):
        C.check_alexnet_table(lambda: [Anything()] * 8)


def _judged(source: str, **namespace) -> BaseException | None:
    return judge_cell(source, judged_session(namespace))[1]


Q7 = ("from autograde.checks.lab02_metrics import check_hook_counter\n"
      "check_hook_counter(count_macs_with_hooks)")


def test_q7_judged_in_the_grader_still_sees_hooks_and_flop_counters(solution):
    """The model travels to the kernel as data and comes back after the call: hooks left on
    it there are seen here; FlopCounterMode is refused in the kernel by module."""
    assert _judged(Q7, count_macs_with_hooks=solution.count_macs_with_hooks) is None

    def leaves_hooks(model, x):
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.register_forward_hook(lambda *a: None)
        return solution.count_macs_with_hooks(model, x)
    assert "still registered" in str(_judged(Q7, count_macs_with_hooks=leaves_hooks))

    assert "after the model raised" in str(_judged(Q7, count_macs_with_hooks=without_finally(
        solution)))

    def via_mode(model, x):
        with FlopCounterMode(display=False) as c:
            model(x)
        return c.get_total_flops() // 2
    assert "FlopCounterMode" in str(_judged(Q7, count_macs_with_hooks=via_mode))
    # in a real kernel the grader's patch of FlopCounterMode is not there: the watch that
    # travels with the call refuses the module itself
    recorder = Recorder([], modules=C.FLOP_COUNTERS)
    with pytest.raises(CheckFailed, match="torch.utils.flop_counter"), \
            from_spec(recorder.spec()):
        via_mode(nn.Linear(2, 2), torch.ones(1, 2))
