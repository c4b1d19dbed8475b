"""Plots the labs show: a student's function beside PyTorch's, growth curves, tensors.

Each helper tolerates answers that are not written yet (NotImplementedError):
it draws the reference and says what is missing, so a fresh lab runs top to bottom.
"""

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch


def attempt(fn: Callable, *args):
    """fn(*args), or None when the answer still raises NotImplementedError."""
    try:
        return fn(*args)
    except NotImplementedError:
        return None


def compare_curves(student: Mapping[str, Callable], reference: Mapping[str, Callable],
                   lo: float = -5.0, hi: float = 5.0, derivative: bool = True):
    """One panel per function: torch's curve dashed, the student's solid, and d/dx."""
    x = torch.linspace(lo, hi, 401, dtype=torch.float64)
    names = list(reference)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(x, reference[name](x), "k--", lw=1.2, label="torch")
        if derivative:
            xg = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(reference[name](xg).sum(), xg)
            ax.plot(x, grad, ":", color="tab:gray", lw=1.0, label="torch d/dx")
        mine = attempt(student[name], x.float()) if name in student else None
        if mine is None:
            ax.set_title(f"{name}\n(yours: not written yet)", fontsize=9)
        else:
            ax.plot(x, torch.as_tensor(mine).detach().double(), color="tab:orange", lw=2.0,
                    alpha=0.7, label="yours")
            ax.set_title(name)
        ax.axhline(0, color="0.85", lw=0.8)
        ax.axvline(0, color="0.85", lw=0.8)
        ax.set_ylim(-1.6, 3.2)
        ax.set_xlabel("x")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    plt.show()  # shown once; returning the figure would show it a second time


def growth_curves(fn: Callable, stacks: Mapping[str, Sequence], ylabel: str = "",
                  logy: bool = False):
    """Plot fn(stack[:i]) against depth i for each named stack of layers."""
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    missing = False
    for label, layers in stacks.items():
        depths = range(1, len(layers) + 1)
        values = [attempt(fn, list(layers[:d])) for d in depths]
        if any(v is None for v in values):
            missing = True
            continue
        ax.plot(list(depths), [int(v) for v in values], marker="o", ms=3, label=label)
    if missing:
        ax.text(0.5, 0.5, "write the function above to see these curves",
                transform=ax.transAxes, ha="center", color="tab:red")
    ax.set_xlabel("layers")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()  # shown once; returning the figure would show it a second time


def show_maps(maps: Mapping[str, torch.Tensor | None], annotate: bool = True):
    """Show 2-D maps side by side as annotated heat maps (None: not written yet)."""
    fig, axes = plt.subplots(1, len(maps), figsize=(3.0 * len(maps), 3.0), squeeze=False)
    for ax, (title, m) in zip(axes[0], maps.items(), strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        if m is None:
            ax.set_title(f"{title}\n(not written yet)", fontsize=9)
            continue
        m = torch.as_tensor(m).detach().double().squeeze()
        ax.imshow(m, cmap="viridis")
        ax.set_title(title)
        if annotate and m.numel() <= 100:
            for (i, j), v in zip(torch.cartesian_prod(torch.arange(m.shape[0]),
                                                      torch.arange(m.shape[1])).tolist(),
                                 m.flatten().tolist(), strict=True):
                ax.text(j, i, f"{v:g}", ha="center", va="center", color="w", fontsize=8)
    fig.tight_layout()
    plt.show()  # shown once; returning the figure would show it a second time
