"""Train and evaluate a classifier: seeded, device-agnostic, with tqdm progress bars.

Adam (Kingma and Ba, https://arxiv.org/abs/1412.6980) with a cosine learning-rate
schedule (Loshchilov and Hutter, https://arxiv.org/abs/1608.03983).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from efflib.devices import model_device
from efflib.latency import fast_mode
from efflib.measuring import measuring


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class History:
    """Per-epoch training loss and test accuracy, and the wall time."""

    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0

    def __repr__(self) -> str:
        """One line (a notebook shows the History a fit returns as its cell's value)."""
        parts = [f"{self.epochs} epochs in {self.seconds:.1f} s"]
        if self.train_loss:
            parts.append(f"train loss {self.train_loss[0]:.3f} -> {self.train_loss[-1]:.3f}")
        if self.test_accuracy:
            parts.append(f"test accuracy {self.test_accuracy[-1]:.1%}")
        return f"History({', '.join(parts)})"


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None
             ) -> float:
    """Top-1 accuracy of `model` on `loader`, in [0, 1], in eval mode; the model's modes
    are restored afterwards."""
    device = torch.device(device) if device is not None else _model_device(model)
    correct = total = 0
    with measuring(model, "eval"):
        for x, y in loader:
            pred = model(x.to(device)).argmax(1)  # (N,)
            correct += int((pred == y.to(device)).sum())
            total += len(y)
    if not total:
        raise ValueError("evaluate() got an empty loader")
    return correct / total


def fit(model: nn.Module, train: DataLoader, test: DataLoader | None = None, epochs: int = 10,
        lr: float = 3e-3, weight_decay: float = 0.0, seed: int = 0,
        device: torch.device | str | None = None,
        after_step: Callable[[nn.Module], None] | None = None, fast_epochs: int | None = None,
        progress: bool = True,
        loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        ) -> History:
    """Train with Adam and a cosine schedule; evaluate on `test` after every epoch.

    Args:
        model: the classifier; it is moved to `device` (default: CUDA when present).
        train, test: loaders of (images, labels); `test` may be None.
        epochs: passes over `train`.
        lr, weight_decay: Adam's settings; the rate decays to 0 along a cosine.
        seed: seeds torch and the loader's shuffle before training, so two runs on the
            CPU from the same initial weights end with equal weights.
        after_step: called with the model after every optimizer step (e.g. to re-apply
            pruning masks).
        fast_epochs: the number of epochs used instead while nbgrader executes the
            notebook (environment variable NBGRADER_EXECUTION set), to keep grading quick.
        progress: show a tqdm bar over the batches of all epochs.
        loss: `loss(model, x, y)` returning the batch's loss to minimise, for training
            that needs more than the model's output (a teacher's logits, several exits);
            default: cross-entropy of `model(x)` against `y`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit() trains an nn.Module, got {type(model).__name__}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if fast_epochs is not None and fast_mode():
        epochs = max(1, min(epochs, fast_epochs))
    torch.manual_seed(seed)
    shuffle = getattr(train.sampler, "generator", None)
    if shuffle is not None:  # a loader with its own generator: restart its order too
        shuffle.manual_seed(seed)
    device = torch.device(device) if device is not None else default_device()
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(train))
    hist = History(epochs=epochs)
    start = time.perf_counter()
    bar = tqdm(total=epochs * len(train), desc="training", disable=not progress, leave=False)
    for _ in range(epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in train:
            x, y = x.to(device), y.to(device)
            value = F.cross_entropy(model(x), y) if loss is None else loss(model, x, y)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise TypeError("loss(model, x, y) must return a scalar tensor, got "
                                f"{getattr(value, 'shape', type(value).__name__)}")
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                after_step(model)
            total, count = total + value.item() * len(y), count + len(y)
            bar.update()
        hist.train_loss.append(total / count)
        if test is not None:
            hist.test_accuracy.append(evaluate(model, test, device))
            bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", acc=f"{hist.test_accuracy[-1]:.3f}")
    bar.close()
    model.eval()  # trained: ready for inference
    hist.seconds = time.perf_counter() - start
    return hist


def _model_device(model: nn.Module) -> torch.device:
    return model_device(model) or torch.device("cpu")
