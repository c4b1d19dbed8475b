"""Plots the labs show: a student's function beside PyTorch's, growth curves, tensors.

Each helper tolerates answers that are not written yet (NotImplementedError):
it draws the reference and says what is missing, so a fresh lab runs top to bottom.
"""

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
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


def plain_log_axis(ax, axis: str = "x") -> None:
    """A log-scaled axis ticked at 1, 2 and 5 times powers of ten with plain numbers ("0.2",
    "50"): on a range of less than a decade matplotlib labels every minor tick with
    "3x10^0"-style labels that run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: PLC0415

    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _box(text, renderer):
    return text.get_window_extent(renderer)


def label_points(ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str],
                 fontsize: int = 7) -> list:
    """Annotate each point with its label at the best of sixteen offsets around it: inside
    the axes, on no label placed before it, nearer its own point than any other, and on
    no marker, in that order of importance (the first offset wins a tie). Returns the
    annotations."""
    fig = ax.figure
    fig.canvas.draw()  # positions are known once laid out
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    marks = np.asarray(ax.transData.transform(list(zip(xs, ys, strict=True))))  # (n, 2) px
    near = [(5, 3), (5, -11), (-5, 3), (-5, -11), (0, 8), (0, -15), (10, -4), (-10, -4)]
    offsets = near + [(2 * dx, 2 * dy) for dx, dy in near]
    placed, annotations = [], []
    for j, (x, y, label) in enumerate(zip(xs, ys, labels, strict=True)):
        best = None
        for dx, dy in offsets:
            a = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy),
                            fontsize=fontsize, ha="left" if dx > 0 else "right" if dx < 0
                            else "center")
            box = _box(a, renderer)
            cx, cy = (box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2
            score = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                     and box.y1 <= frame.y1,
                     not any(box.overlaps(p) for p in placed),
                     int(((marks[:, 0] - cx) ** 2 + (marks[:, 1] - cy) ** 2).argmin()) == j,
                     not any(box.x0 - 2 <= mx <= box.x1 + 2 and box.y0 - 2 <= my <= box.y1 + 2
                             for mx, my in marks))
            if best is None or score > best[0]:
                if best is not None:
                    best[1].remove()
                best = (score, a, box)
            else:
                a.remove()
            if all(score):
                break
        placed.append(best[2])
        annotations.append(best[1])
    return annotations


def _drawn_texts(fig) -> list:
    """The texts a figure draws: titles, axis labels, the tick labels inside the view,
    annotations, legends, and the figure's own texts."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label,
                  *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            texts += [t.label1 for t in axis._update_ticks()] + \
                     [t.label2 for t in axis._update_ticks() if t.label2.get_visible()]
        if (legend := ax.get_legend()) is not None:
            texts += legend.get_texts()
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def text_clashes(fig) -> list[str]:
    """Pairs of texts of a figure (titles, labels, tick labels, annotations, legends) that
    overlap, and texts that run into another axes (a colorbar, a neighbouring panel):
    what makes a plot hard to read. The figure's edge is not checked: a notebook saves
    the figure with a tight bounding box, which grows to hold every text."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = _drawn_texts(fig)
    boxes = [(t.get_text(), _box(t, renderer)) for t in texts]
    found = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            if box_a.overlaps(box_b) and box_a.width and box_b.width:
                found.append(f"{a!r} overlaps {b!r}")
    for text, (label, box) in zip(texts, boxes, strict=True):
        own = text.axes
        for ax in fig.axes:
            if ax is not own and own is not None and box.overlaps(ax.get_window_extent(renderer)):
                found.append(f"{label!r} runs into another panel ({ax.get_label() or 'axes'})")
    return found
