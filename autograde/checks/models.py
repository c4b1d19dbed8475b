"""Modules the checks hand to a student's answer. They travel to the kernel by name
(`trusted_module`: the kernel imports this module), so they live apart from the checks'
references: the grader's clean room (judging.clean_room) has them and not the lab checks."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograde.judging.layers import trusted_module


@trusted_module
class MixedNet(nn.Module):
    """Modules plus a functional matmul and a residual add: hooks see only the modules."""

    def __init__(self, c: int, k: int, g: int, classes: int, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, c, k, padding=k // 2, bias=False)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, groups=g)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c, classes))
        self.proj = nn.Parameter(torch.randn(classes, classes, generator=gen))

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = y + self.conv2(y)  # residual add
        y = F.adaptive_avg_pool2d(y, 1)
        return self.head(y) @ self.proj  # functional: not a module


@trusted_module
class OutputScore(nn.Module):
    """The scan's score in Q3's check: the mean square of a model's output on fixed inputs.
    A module, so that it travels to the student's kernel as data (judging.layers)."""

    def __init__(self, x: torch.Tensor):
        super().__init__()
        self.register_buffer("x", x)

    def forward(self, model: nn.Module) -> float:
        with torch.no_grad():
            return float(model(self.x).square().mean())


@trusted_module
class Gate(nn.Module):
    """block2's first convolution in the check's models, gated: it convolves block1's
    features as the lab's model does (3x3, padding 1, no bias), unless one of the images
    it is given should have left at exit1; then it spoils the whole batch. Running block2
    on an exited image therefore shows in the predictions the grader compares, and nothing
    the student's kernel reports back is trusted. The convolution is the gate's own, so
    block2 without the gate (`block2[1:]`) is no way round it."""

    def __init__(self, exit1: nn.Module, conv: nn.Conv2d, threshold: float = 0.5):
        super().__init__()
        self.exit1 = copy.deepcopy(exit1)
        self.weight = nn.Parameter(conv.weight.detach().clone())  # (C_out, C_in, 3, 3)
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
        conf = self.exit1(h).softmax(1).max(1).values  # (N,)
        if bool((conf >= self.threshold + 1e-6).any()):
            h = -4 * h
        return F.conv2d(h, self.weight, padding=1)
