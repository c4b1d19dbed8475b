"""Pruning: fine-grained magnitude masks, masks kept through fine-tuning, sensitivity, channels.

Han et al., Learning both Weights and Connections for Efficient Neural Networks,
https://arxiv.org/abs/1506.02626 (magnitude pruning, sensitivity per layer);
Li et al., Pruning Filters for Efficient ConvNets, https://arxiv.org/abs/1608.08710
(channel pruning by filter norm: the paper uses the L1 norm, this course the
L2 norm). Irregular sparsity shrinks storage but not the
run time of dense kernels; removing whole channels shrinks both.
"""

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from efflib import inputs
from efflib.graded import reference

PRUNABLE = (nn.Conv2d, nn.Linear)


def kept_count(numel: int, sparsity: float) -> int:
    """Weights a mask keeps: round((1 - sparsity) * numel), Python's round (half to even)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    return round((1.0 - sparsity) * numel)


@reference("magnitude_mask")
def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask keeping the round((1-s)·n) largest |w|; ties keep the lower flat index."""
    inputs.finite(weight, "weight", "magnitude_mask")
    k = kept_count(weight.numel(), sparsity)
    order = torch.sort(weight.detach().abs().flatten(), descending=True, stable=True).indices
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[order[:k]] = True
    return mask.view_as(weight)


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d and Linear modules by name: the layers whose weights pruning acts on."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


class Pruner:
    """Fine-grained masks on chosen layers, re-applied after every optimizer step.

    Pass `pruner.apply` as `efflib.train.fit(..., after_step=pruner.apply)`: weights
    an optimizer step moves off zero (Adam's momentum does) are zeroed again.
    """

    @reference("prune_model")  # Lab 04 Q2's answer: prune_model and apply_masks
    def __init__(self, model: nn.Module, sparsities: Mapping[str, float]):
        layers = prunable_layers(model)
        unknown = set(sparsities) - set(layers)
        if unknown:
            raise KeyError(f"not Conv2d/Linear layers of this model: {sorted(unknown)}; "
                           f"choose from {sorted(layers)}")
        self.model = model
        self.masks = {name: magnitude_mask(layers[name].weight, s)
                      for name, s in sparsities.items()}
        self.apply()

    @reference("prune_model")
    @torch.no_grad()
    def apply(self, model: nn.Module | None = None) -> None:
        layers = prunable_layers(model if model is not None else self.model)
        for name, mask in self.masks.items():
            layers[name].weight.mul_(mask)

    def sparsity(self) -> dict[str, float]:
        """Share of zero weights in every prunable layer, and "total" over them."""
        layers = prunable_layers(self.model)
        out = {name: float((m.weight == 0).float().mean()) for name, m in layers.items()}
        zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
        out["total"] = zeros / sum(m.weight.numel() for m in layers.values())
        return out


@reference("sensitivity_scan")
def sensitivity_scan(model: nn.Module, evaluate: Callable[[nn.Module], float],
                     sparsities: Sequence[float], layers: Iterable[str] | None = None,
                     progress: bool = True) -> dict[str, list[float]]:
    """Score after pruning one layer at a time to each sparsity; the model is restored."""
    from tqdm.auto import tqdm

    all_layers = prunable_layers(model)
    names = list(layers) if layers is not None else list(all_layers)
    result: dict[str, list[float]] = {}
    bar = tqdm(total=len(names) * len(sparsities), desc="sensitivity", disable=not progress,
               leave=False)
    for name in names:
        weight = all_layers[name].weight
        saved = weight.detach().clone()
        scores = []
        for s in sparsities:
            with torch.no_grad():
                weight.mul_(magnitude_mask(saved, s))
            scores.append(float(evaluate(model)))
            with torch.no_grad():
                weight.copy_(saved)
            bar.update()
        result[name] = scores
    bar.close()
    return result


def channel_importance(conv: nn.Conv2d) -> torch.Tensor:
    """L2 norm of each output filter: (c_out,)."""
    return conv.weight.detach().flatten(1).norm(dim=1)


@reference("prune_channels")
def prune_channels(conv: nn.Conv2d, bn: nn.BatchNorm2d | None, next_layer: nn.Module,
                   keep: int) -> tuple[nn.Conv2d, nn.BatchNorm2d | None, nn.Module]:
    """Keep the `keep` output channels of `conv` with the largest filter norms.

    Returns new, smaller modules: `conv` with fewer filters, `bn` with those
    channels' statistics, and `next_layer` (Conv2d with groups=1, or a Linear
    after a flatten) with the matching input channels. Kept channels stay in order.
    """
    if conv.groups != 1:
        raise ValueError("prune_channels handles convs with groups=1 only")
    if not 1 <= keep <= conv.out_channels:
        raise ValueError(f"keep must be in 1..{conv.out_channels}, got {keep}")
    idx = torch.sort(torch.topk(channel_importance(conv), keep).indices).values
    new_conv = nn.Conv2d(conv.in_channels, keep, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, bias=conv.bias is not None,
                         padding_mode=conv.padding_mode,
                         device=conv.weight.device, dtype=conv.weight.dtype)  # fp64, bf16 kept
    with torch.no_grad():
        new_conv.weight.copy_(conv.weight[idx])
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias[idx])
    new_bn = None
    if bn is not None:
        if bn.num_features != conv.out_channels:
            raise ValueError(f"bn has {bn.num_features} channels, conv {conv.out_channels}")
        new_bn = copy.deepcopy(bn)
        new_bn.num_features = keep
        for attr in ("weight", "bias"):
            if getattr(bn, attr) is not None:
                setattr(new_bn, attr, nn.Parameter(getattr(bn, attr).detach()[idx].clone()))
        if bn.running_mean is not None:  # None with track_running_stats=False
            new_bn.running_mean = bn.running_mean[idx].clone()
            new_bn.running_var = bn.running_var[idx].clone()
    return new_conv, new_bn, _slice_inputs(next_layer, idx, conv.out_channels)


def _slice_inputs(layer: nn.Module, idx: torch.Tensor, channels: int) -> nn.Module:
    """A copy of `layer` that reads only input channels `idx` (of `channels`)."""
    new = copy.deepcopy(layer)
    if isinstance(layer, nn.Conv2d):
        if layer.groups != 1 or layer.in_channels != channels:
            raise ValueError("the next conv must have groups=1 and read every pruned channel")
        new.in_channels = len(idx)
        new.weight = nn.Parameter(layer.weight.detach()[:, idx].clone())
    elif isinstance(layer, nn.Linear):
        if layer.in_features % channels:
            raise ValueError(f"Linear with {layer.in_features} inputs does not follow "
                             f"{channels} flattened channels")
        per = layer.in_features // channels  # spatial positions per channel after flatten
        cols = (idx[:, None] * per + torch.arange(per, device=idx.device)).flatten()
        new.in_features = len(cols)
        new.weight = nn.Parameter(layer.weight.detach()[:, cols].clone())
    else:
        raise TypeError(f"cannot slice the inputs of {type(layer).__name__}")
    return new


def channel_prune(model: nn.Module, ratio: float) -> nn.Module:
    """A smaller dense copy of a chain-like CNN keeping `ratio` of every conv's channels.

    Layers must run in the order they are registered (nn.Sequential, or a model
    whose forward follows its attributes, like efflib's DigitCNN); each Conv2d's
    BatchNorm, if any, is the next BatchNorm2d, and its consumer the next Conv2d or
    Linear. The last Conv2d/Linear layer (the classifier) keeps its outputs.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    twin = copy.deepcopy(model)
    names = [n for n, m in twin.named_modules() if not list(m.children())]
    for i, name in enumerate(names):
        leaves = [(n, twin.get_submodule(n)) for n in names]  # current modules, after surgery
        m = leaves[i][1]
        if not isinstance(m, nn.Conv2d):
            continue
        rest = leaves[i + 1:]
        consumer = next(((n, c) for n, c in rest if isinstance(c, PRUNABLE)), None)
        if consumer is None:
            continue
        bn = next(((n, b) for n, b in rest[: rest.index(consumer)]
                   if isinstance(b, nn.BatchNorm2d)), None)
        keep = max(1, round(ratio * m.out_channels))
        conv, new_bn, nxt = prune_channels(m, bn[1] if bn else None, consumer[1], keep)
        for n, new in [(name, conv), (consumer[0], nxt)] + ([(bn[0], new_bn)] if bn else []):
            _set(twin, n, new)
    return twin


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)
