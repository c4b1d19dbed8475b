"""Scoring a candidate network without training it, and how well a score ranks candidates.

The gradient norm at initialisation is one of the zero-cost proxies compared by
Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021
(https://arxiv.org/abs/2101.08134). Kendall's tau-b (Kendall, Biometrika 1945, ties
allowed) says how often two scorings of the same candidates order a pair alike.
"""

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from efflib import inputs
from efflib.devices import to_model_device


def grad_norm_at_init(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The sum over the model's parameters of the L2 norm of the cross-entropy loss's
    gradient on one batch, the model as it is (untrained): the `grad_norm` proxy. The
    model's own `.grad`s and its train/eval mode are left as they were."""
    who = "grad_norm_at_init"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}: model must be an nn.Module, got {type(model).__name__}")
    images = inputs.finite(images, "images", who, empty=False)
    labels = inputs.tensor(labels, "labels", who)
    if labels.dim() != 1 or len(labels) != len(images) or labels.is_floating_point():
        raise ValueError(f"{who}: labels must be one class index per image ({len(images)}), "
                         f"got {labels.dtype} of shape {tuple(labels.shape)}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{who}: the model has no trainable parameters")
    was_training = model.training
    model.train()  # as the proxy is defined: batch statistics, as in the first step
    try:
        images, labels = to_model_device(model, images, labels)
        loss = F.cross_entropy(model(images), labels)  # (N, classes) logits
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        model.train(was_training)
    return float(sum(g.norm() for g in grads if g is not None))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two scorings of the same items: (concordant - discordant pairs)
    over sqrt((pairs - pairs tied in a) * (pairs - pairs tied in b)). 1: every pair
    ordered alike; -1: every pair reversed; NaN when either scoring ties every pair."""
    who = "kendall_tau"
    a, b = list(a), list(b)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"{who}: needs two scorings of the same items, at least 2 of them; "
                         f"got {len(a)} and {len(b)} scores")
    for name, scores in (("a", a), ("b", b)):
        for i, v in enumerate(scores):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v):
                raise ValueError(f"{who}: {name}[{i}] must be a number, got {v!r}")
    concordant = discordant = tied_a = tied_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
            tied_a += da == 0
            tied_b += db == 0
            concordant += da * db > 0
            discordant += da * db < 0
    pairs = len(a) * (len(a) - 1) // 2
    denominator = math.sqrt((pairs - tied_a) * (pairs - tied_b))
    return (concordant - discordant) / denominator if denominator else math.nan
