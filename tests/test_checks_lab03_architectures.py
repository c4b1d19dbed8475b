"""The Lab 03 checks accept the solution and reject wrong, lazy and hostile answers."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograde import inventory
from autograde.checks import lab03_architectures as C
from autograde.checks.api import CheckFailed
from efflib import models
from efflib.graded import GradedAnswerError


@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes_every_check(solution, hidden):
    C.check_vgg_stage(solution.vgg_stage, hidden)
    C.check_bottleneck(solution.Bottleneck, hidden)
    C.check_inverted_residual(solution.InvertedResidual, hidden)
    C.check_channel_shuffle(solution.channel_shuffle, hidden)
    C.check_shift(solution.shift, hidden)
    C.check_factorised(solution.factorised_conv, hidden)


def test_solution_table5_and_digit_model(solution):
    C.check_table5(solution.ratios, solution.table5_counts)
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
    with pytest.raises(CheckFailed, match="submodule inner is efflib's InvertedResidual"):
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
    with pytest.raises(CheckFailed, match="linear bottleneck"):
        C.check_inverted_residual(ReluAtEnd)

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
    with pytest.raises(CheckFailed, match="trained nn.Module, got NoneType"):
        C.check_digit_model(None)


def test_judged_in_the_grader():
    """Points whose test cells are judged outside the student's kernel, of all autograded."""
    facts = inventory.facts("lab03_architectures")
    assert (facts.judged_points, facts.auto_points) == (11, 20)
