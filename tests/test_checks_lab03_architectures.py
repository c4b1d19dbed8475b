"""The Lab 03 checks accept the solution and reject wrong, lazy and hostile answers."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import judged_session
from torch.utils._python_dispatch import _disable_current_modes

from autograde.checks import lab03_architectures as C
from autograde.checks.api import CheckFailed, NotAnswered
from autograde.judging.judge import judge_cell
from efflib import models
from efflib.graded import GradedAnswerError

FAILS = (CheckFailed, GradedAnswerError)


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_vgg_stage(solution.vgg_stage, hidden)
    C.check_bottleneck(solution.Bottleneck, hidden)
    C.check_inverted_residual(solution.InvertedResidual, hidden)
    C.check_channel_shuffle(solution.channel_shuffle, hidden)
    C.check_shift(solution.shift, hidden)
    C.check_factorised(solution.factorised_conv, hidden)
    C.check_edge_sizes(solution.feature_sizes, hidden)
    C.check_rotate_shuffle(solution.rotate_shuffle, hidden)
    C.check_contiguous_runs(solution.contiguous_runs, hidden)
    C.check_dirac_unit(solution.dirac_unit, hidden)


def test_solution_table5_and_digit_model(solution):
    C.check_table5(solution.ratios, solution.table5_counts)
    C.check_edge_numbers(solution.conv5_side_at_192, solution.largest_side_for_4x4,
                         solution.edge_macs)
    C.check_digit_model(solution.digit_model)


def test_vgg_stage_mistakes():
    def no_relu(ci, co, n):
        return nn.Sequential(*[nn.Conv2d(ci if i == 0 else co, co, 3, padding=1)
                               for i in range(n)], nn.MaxPool2d(2))
    with pytest.raises(CheckFailed, match="negative.*ReLU"):
        C.check_vgg_stage(no_relu)

    def no_padding(ci, co, n):
        layers = []
        for i in range(n):
            layers += [nn.Conv2d(ci if i == 0 else co, co, 3), nn.ReLU()]
        return nn.Sequential(*layers, nn.MaxPool2d(2))
    with pytest.raises(CheckFailed, match="output shape"):
        C.check_vgg_stage(no_padding)

    def one_relu_per_stage(ci, co, n):  # shapes, counts, MACs and signs all as specified
        return nn.Sequential(*[nn.Conv2d(ci if i == 0 else co, co, 3, padding=1)
                               for i in range(n)], nn.ReLU(), nn.MaxPool2d(2))
    with pytest.raises(CheckFailed, match="where the specification has a ReLU"):
        C.check_vgg_stage(one_relu_per_stage)

    def average_pool(ci, co, n):
        layers = []
        for i in range(n):
            layers += [nn.Conv2d(ci if i == 0 else co, co, 3, padding=1), nn.ReLU()]
        return nn.Sequential(*layers, nn.AvgPool2d(2))
    with pytest.raises(CheckFailed, match="an average pool .*where the specification has a "
                                          "max pool"):
        C.check_vgg_stage(average_pool)

    with pytest.raises(GradedAnswerError, match="vgg_stage"):
        C.check_vgg_stage(lambda ci, co, n: models.vgg.vgg_stage(ci, co, n))


def test_efflib_blocks_are_refused():
    with pytest.raises(CheckFailed, match="efflib's Bottleneck"):
        C.check_bottleneck(models.Bottleneck)

    class Wrapper(nn.Module):
        def __init__(self, *args):
            super().__init__()
            self.inner = models.InvertedResidual(*args)

        def forward(self, x):
            return self.inner(x)
    with pytest.raises(CheckFailed, match="uses efflib's InvertedResidual"):
        C.check_inverted_residual(Wrapper)
    with pytest.raises(GradedAnswerError, match="channel_shuffle"):
        C.check_channel_shuffle(models.channel_shuffle)


def _bottleneck(relu_after_add=True, project=True):
    class B(nn.Module):
        def __init__(self, c_in, width, stride=1):
            super().__init__()
            c_out = 4 * width
            self.body = nn.Sequential(
                nn.Conv2d(c_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(), nn.Conv2d(width, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
            self.proj = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                       nn.BatchNorm2d(c_out))
                         if project and (stride != 1 or c_in != c_out) else None)
            self.stride, self.c_out = stride, c_out

        def forward(self, x):
            skip = self.proj(x) if self.proj is not None else x
            if skip.shape[1] != self.c_out or self.stride != 1 and skip is x:
                skip = 0
            body = self.body(x)
            return F.relu(body + skip) if relu_after_add else F.relu(body) + skip
    return B


def test_bottleneck_mistakes():
    C.check_bottleneck(_bottleneck())  # the helper itself is right
    with pytest.raises(CheckFailed, match="zeroed"):
        C.check_bottleneck(_bottleneck(relu_after_add=False))
    with pytest.raises(CheckFailed, match="parameter count"):
        C.check_bottleneck(_bottleneck(project=False))


def test_inverted_residual_mistakes(solution):
    class ReluAtEnd(solution.InvertedResidual):
        def forward(self, x):
            out = F.relu6(self.body(x))
            return x + out if self.use_skip else out
    with pytest.raises(CheckFailed, match=r"has a ReLU6 \(after batch norm, conv, ReLU6\) "
                                          "where the specification has a batch norm"):
        C.check_inverted_residual(ReluAtEnd)

    class PlainReLU(solution.InvertedResidual):  # ReLU where MobileNetV2 has ReLU6
        def __init__(self, *args):
            super().__init__(*args)
            for i, m in enumerate(self.body):
                if isinstance(m, nn.ReLU6):
                    self.body[i] = nn.ReLU()
    with pytest.raises(CheckFailed, match=r"a ReLU \(after batch norm, conv.*\) where the "
                                          "specification has a ReLU6"):
        C.check_inverted_residual(PlainReLU)

    class AlwaysSkip(solution.InvertedResidual):
        def forward(self, x):
            out = self.body(x)
            return x + out if out.shape == x.shape else out
    C.check_inverted_residual(AlwaysSkip)  # same rule written differently: fine

    class NeverSkip(solution.InvertedResidual):
        def forward(self, x):
            return self.body(x)
    with pytest.raises(CheckFailed, match="Add x only when"):
        C.check_inverted_residual(NeverSkip)


def test_channel_shuffle_mistakes():
    def no_transpose(x, g):
        if x.shape[1] % g:
            raise ValueError("groups")
        return x.clone()
    with pytest.raises(CheckFailed, match="values differ"):
        C.check_channel_shuffle(no_transpose)

    def wrong_axis(x, g):
        n, c, h, w = x.shape
        return x.view(n, c // g, g, h, w).transpose(1, 2).reshape(n, c, h, w)
    with pytest.raises(CheckFailed):
        C.check_channel_shuffle(wrong_axis)


def test_shift_mistakes(solution):
    with pytest.raises(CheckFailed, match="torch's conv2d"):
        C.check_shift(lambda x, k=3: C._shift_reference(x, k))
    with pytest.raises(CheckFailed, match="values differ"):
        C.check_shift(lambda x, k=3: solution.shift(x.flip(2, 3), k).flip(2, 3))
    with pytest.raises(CheckFailed, match="torch's roll"):
        C.check_shift(lambda x, k=3: torch.roll(x, 1, 2))


def test_shift_refusals_are_read_from_what_ran(watch_replaced):
    """Issue 19, 7c: with the kernel's watch replaced, the refused convolution is still
    found in the recorded operations, and a result made outside them does not follow."""
    with pytest.raises(CheckFailed, match="convolution"):
        C.check_shift(lambda x, k=3: C._shift_reference(x, k))

    def out_of_sight(x, k=3):
        with _disable_current_modes(), torch._C.DisableTorchFunction():
            return C._shift_reference(x, k)
    with pytest.raises(CheckFailed, match="does not follow from the inputs"):
        C.check_shift(out_of_sight)


def test_factorised_mistakes():
    def square_padding(ci, co, n):
        return nn.Sequential(nn.Conv2d(ci, co, (1, n), padding=n // 2, bias=False),
                             nn.Conv2d(co, co, (n, 1), padding=n // 2, bias=False))
    with pytest.raises(CheckFailed, match="long side only"):
        C.check_factorised(square_padding)
    with pytest.raises(CheckFailed, match=r"expected a \(1, 3\) conv"):
        C.check_factorised(lambda ci, co, n: nn.Sequential(
            nn.Conv2d(ci, co, n, padding=n // 2, bias=False)))
    with pytest.raises(CheckFailed, match="nn.Sequential built only from torch.nn layers"):
        C.check_factorised(lambda ci, co, n: nn.Conv2d(ci, co, n, padding=n // 2, bias=False))

    class Pair(nn.Sequential):  # a custom class cannot be rebuilt by the grader
        pass
    with pytest.raises(CheckFailed, match="got Pair"):
        C.check_factorised(lambda ci, co, n: Pair(
            nn.Conv2d(ci, co, (1, n), padding=(0, n // 2), bias=False),
            nn.Conv2d(co, co, (n, 1), padding=(n // 2, 0), bias=False)))

    def with_bias(ci, co, n):
        return nn.Sequential(nn.Conv2d(ci, co, (1, n), padding=(0, n // 2)),
                             nn.Conv2d(co, co, (n, 1), padding=(n // 2, 0)))
    with pytest.raises(CheckFailed, match="bias=False"):
        C.check_factorised(with_bias)


def test_table5_mistakes(solution):
    with pytest.raises(CheckFailed, match="'MACs' or 'FLOPs'"):
        C.check_table5(solution.ratios, "FLOPs")
    doubled = {w: 2 * r for w, r in solution.ratios.items()}
    with pytest.raises(CheckFailed, match=r"ratios\[0.5\]"):
        C.check_table5(doubled, "MACs")
    with pytest.raises(CheckFailed, match="dict keyed by the widths"):
        C.check_table5({1.0: 1.0}, "MACs")


def test_edge_sizes_match_the_real_network():
    """The check's arithmetic agrees with running efflib's ShuffleNetV2 with the cut conv5."""
    net = C.edge_shufflenet_reference()
    shapes = {}

    def record(name):
        def hook(module, args, out) -> None:
            shapes[name] = tuple(out.shape[1:])
        return hook
    modules = {"conv1": net.stem[0], "maxpool": net.stem[-1], "stage2": net.stages[0],
               "stage3": net.stages[1], "stage4": net.stages[2], "conv5": net.conv5}
    hooks = [m.register_forward_hook(record(n)) for n, m in modules.items()]
    for side in (192, 128, 97, 33):
        net(torch.empty(1, 3, side, side, device="meta"))
        assert [shapes[n] for n in C.EDGE_NAMES] == C.edge_sizes(side)
    assert C.edge_sizes(192)[-1][1:] == (6, 6)  # the notes' slip: 192 does not give 4x4
    for h in hooks:
        h.remove()


def test_edge_mistakes(solution):
    def floor_halving(side):  # side // 2 at every stride: wrong for odd sides
        sizes, h = [], side
        for i, c in enumerate(C.EDGE_CHANNELS):
            h = h // 2 if i < 5 else h
            sizes.append((c, h, h))
        return sizes
    for hidden in (False, True):  # a visible odd side shows it before grading
        with pytest.raises(CheckFailed, match="rounds odd sides up"):
            C.check_edge_sizes(floor_halving, hidden=hidden)

    def read_off_the_network(side):  # the sizes of the real network, not the arithmetic
        net, sizes = C.edge_shufflenet_reference(), []
        parts = [net.stem[0], net.stem[-1], *net.stages[:3], net.conv5]
        hooks = [m.register_forward_hook(lambda m, a, out: sizes.append(tuple(out.shape[1:])))
                 for m in parts]
        net(torch.empty(1, 3, side, side, device="meta"))
        for h in hooks:
            h.remove()
        return sizes
    with pytest.raises(FAILS, match="formula, not for building"):
        C.check_edge_sizes(read_off_the_network)

    def width_1x(side):
        return [(116 if c == 48 else c, h, w) for c, h, w in solution.feature_sizes(side)]
    with pytest.raises(CheckFailed, match="stage2 has 116 channels"):
        C.check_edge_sizes(width_1x)
    with pytest.raises(CheckFailed, match="4 \\(C, H, W\\)|6 \\(C, H, W\\)"):
        C.check_edge_sizes(lambda side: solution.feature_sizes(side)[:4])
    good = (solution.conv5_side_at_192, solution.largest_side_for_4x4, solution.edge_macs)
    with pytest.raises(CheckFailed, match="conv5_side_at_192: got 4, which is too low"):
        C.check_edge_numbers(4, *good[1:])
    for side in (97, 192, 129):  # smallest 4x4 side, the notes' side, one too many
        with pytest.raises(CheckFailed, match="largest_side_for_4x4"):
            C.check_edge_numbers(good[0], side, good[2])
    with pytest.raises(CheckFailed, match="edge_macs: got .*too high") as e:
        C.check_edge_numbers(*good[:2], good[2] + 1)
    assert f"{good[2]:,d}" not in str(e.value) and str(good[2]) not in str(e.value)


def test_synetgy_mistakes(solution):
    def roll_wrong_way(x):
        c = x.shape[1]
        if c % 4:
            raise ValueError("channels")
        return torch.cat((x[:, c // 4:], x[:, :c // 4]), dim=1)
    with pytest.raises(CheckFailed, match="rotate_shuffle.*values differ"):
        C.check_rotate_shuffle(roll_wrong_way)
    with pytest.raises(CheckFailed, match="expected ValueError"):
        C.check_rotate_shuffle(lambda x: x[:, [(j + 3 * x.shape[1] // 4) % x.shape[1]
                                                for j in range(x.shape[1])]])
    assert solution.contiguous_runs(C.rotate_reference(96)) == 2
    with pytest.raises(CheckFailed, match="contiguous_runs"):
        C.check_contiguous_runs(lambda perm: len(perm))  # one copy per channel
    with pytest.raises(CheckFailed, match="contiguous_runs\\(\\[\\]\\)"):
        C.check_contiguous_runs(  # forgets that an empty list needs no copy
            lambda perm: 1 + sum(perm[i] != perm[i - 1] + 1 for i in range(1, len(perm))))


def test_dirac_unit_mistakes(solution):
    def additive(x, w1, w2):  # ResNet's skip: adds instead of concatenating
        a, b = x.chunk(2, dim=1)
        y = F.relu(F.conv2d(solution.shift(F.relu(F.conv2d(b, w1)), 3), w2))
        return solution.rotate_shuffle(torch.cat((a + y, b), dim=1))
    with pytest.raises(CheckFailed, match="concatenated \\(not added\\)"):
        C.check_dirac_unit(additive)

    def no_shift(x, w1, w2):
        a, b = x.chunk(2, dim=1)
        y = F.relu(F.conv2d(F.relu(F.conv2d(b, w1)), w2))
        return solution.rotate_shuffle(torch.cat((a, y), dim=1))
    with pytest.raises(CheckFailed, match="shift"):
        C.check_dirac_unit(no_shift)

    def no_rotation(x, w1, w2):
        a, b = x.chunk(2, dim=1)
        y = F.relu(F.conv2d(solution.shift(F.relu(F.conv2d(b, w1)), 3), w2))
        return torch.cat((a, y), dim=1)
    with pytest.raises(CheckFailed, match="zero weights"):
        C.check_dirac_unit(no_rotation)


def test_digit_model_rules():
    with pytest.raises(CheckFailed, match="efflib's DigitCNN"):
        C.check_digit_model(models.digit_cnn(width=4))
    wide = nn.Sequential(nn.Conv2d(1, 400, 3), nn.Flatten(), nn.Linear(400 * 36, 10))
    with pytest.raises(CheckFailed, match="budget is 20,000"):
        C.check_digit_model(wide)
    untrained = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(CheckFailed, match="needs at least 95%"):
        C.check_digit_model(untrained)
    with pytest.raises(CheckFailed, match="no nn.Conv2d"):
        C.check_digit_model(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)))
    with pytest.raises(CheckFailed, match="trained nn.Sequential.*got str"):
        C.check_digit_model("model")
    with pytest.raises(NotAnswered, match="still None"):  # the lab's own starting value
        C.check_digit_model(None)


Q11 = ("from autograde.checks.lab03_architectures import check_digit_model\n"
       "check_digit_model(digit_model)")


def test_a_digit_model_cannot_lie_about_its_size(solution):
    """Judged in the grader, the model is rebuilt from its layers and tensors: methods the
    student wrote, on the instance or in a subclass, count for nothing."""
    big = nn.Sequential(nn.Conv2d(1, 300, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(300 * 64, 10))
    big.parameters = lambda recurse=True: iter([torch.zeros(10)])  # "10 parameters"
    assert sum(p.numel() for p in big.parameters()) == 10
    _, error = judge_cell(Q11, judged_session({"digit_model": big}))
    assert "195,010 parameters" in str(error), error

    class Lying(nn.Sequential):
        def parameters(self, recurse=True):
            return iter([])
    _, error = judge_cell(Q11, judged_session({"digit_model": Lying(*solution.digit_model)}))
    assert "nn.Sequential built only from torch.nn layers" in str(error), error
    assert "got Lying" in str(error)


Q2 = ("from autograde.checks.lab03_architectures import check_bottleneck\n"
      "check_bottleneck(Bottleneck)")


def test_a_students_own_block_is_judged_from_its_graph():
    """The block is built in the kernel and comes back as its exported graph; the grader
    runs that graph, so a wrong block fails there whatever the kernel does to its checks."""
    assert judge_cell(Q2, judged_session({"Bottleneck": _bottleneck()}))[1] is None
    _, error = judge_cell(Q2, judged_session({"Bottleneck": _bottleneck(relu_after_add=False)}))
    assert "zeroed" in str(error), error

    class Exotic(nn.Module):  # an operation the grader does not run
        def __init__(self, c_in, width, stride=1):
            super().__init__()
            self.conv = nn.Conv2d(c_in, 4 * width, 1, stride)

        def forward(self, x):
            return torch.special.erfcx(self.conv(x))
    _, error = judge_cell(Q2, judged_session({"Bottleneck": Exotic}))
    assert "the grader does not run" in str(error), error
    _, error = judge_cell(Q2, judged_session({"Bottleneck": lambda *a: "not a module"}))
    assert "nn.Module" in str(error), error
