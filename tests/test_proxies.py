"""efflib.proxies against independent references: Kendall's tau-b against SciPy's, and the
gradient-norm proxy against the gradients autograd leaves in `.grad`."""

import math
import random

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.stats import kendalltau

from efflib import nas, proxies


@pytest.mark.parametrize("seed", range(20))
def test_kendall_tau_is_scipys_tau_b_ties_included(seed):
    r = random.Random(seed)
    n = r.randint(2, 30)
    a = [r.choice([0.1, 0.2, 0.3, r.random()]) for _ in range(n)]  # ties on purpose
    b = [r.randint(0, 4) if r.random() < 0.5 else r.random() for _ in range(n)]
    expected = kendalltau(a, b).statistic
    got = proxies.kendall_tau(a, b)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-12)


def test_kendall_tau_at_its_ends():
    assert proxies.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1
    assert proxies.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1
    assert math.isnan(proxies.kendall_tau([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("a, b, what", [
    ([1, 2], [1], "same items"), ([1], [1], "at least 2"),
    ([1, float("nan")], [1, 2], r"a\[1\] must be a number"),
    ([1, 2], [True, False], r"b\[0\] must be a number"), ([1, 2], ["x", 1], "b"),
])
def test_kendall_tau_names_bad_scores(a, b, what):
    with pytest.raises(ValueError, match=what):
        proxies.kendall_tau(a, b)


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_grad_norm_is_the_sum_of_the_gradients_norms_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nas.tiny_net({"width": 8, "depth": 2, "kernel": 3, "expand": 2}).eval()
    images, labels = _batch()
    got = proxies.grad_norm_at_init(model, images, labels)
    assert not model.training  # its mode restored
    assert all(p.grad is None for p in model.parameters())  # its .grad untouched
    model.train()
    F.cross_entropy(model(images), labels).backward()
    expected = sum(float(p.grad.norm()) for p in model.parameters())
    assert got == pytest.approx(expected, rel=1e-5)
    assert got > 0


def test_grad_norm_tells_networks_apart():
    images, labels = _batch()
    scores = []
    for config in ({"width": 8, "depth": 1, "kernel": 3, "expand": 1},
                   {"width": 16, "depth": 3, "kernel": 5, "expand": 4}):
        torch.manual_seed(0)
        scores.append(proxies.grad_norm_at_init(nas.tiny_net(config), images, labels))
    assert scores[0] != pytest.approx(scores[1], rel=1e-3)


@pytest.mark.parametrize("model, images, labels, what", [
    ("not a model", None, None, "must be an nn.Module"),
    (nn.Linear(64, 10), torch.full((2, 64), float("nan")), torch.tensor([0, 1]), "NaN"),
    (nn.Linear(64, 10), torch.zeros(2, 64), torch.tensor([0, 1, 2]), "one class index"),
    (nn.Linear(64, 10), torch.zeros(2, 64), torch.tensor([0.0, 1.0]), "one class index"),
    (nn.Linear(64, 10).requires_grad_(False), torch.zeros(2, 64), torch.tensor([0, 1]),
     "no trainable"),
])
def test_grad_norm_names_bad_input(model, images, labels, what):
    with pytest.raises((TypeError, ValueError), match=what):
        proxies.grad_norm_at_init(model, images, labels)
