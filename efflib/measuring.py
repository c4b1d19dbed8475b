"""Run a model to measure it, and leave it exactly as it was.

An efficiency profiler measures inference (torchinfo's convention): measuring
happens in eval mode unless train mode is asked for, every module's mode is
restored afterwards, and no parameter or buffer changes, so that BN's running
statistics and its `num_batches_tracked` are not moved by a train-mode pass.
"""

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn

MODES = ("eval", "train")


@contextlib.contextmanager
def measuring(model: nn.Module, mode: str = "eval",
              modules: Sequence[nn.Module] | None = None) -> Iterator[nn.Module]:
    """Put `model` in `mode` for the block; restore every module's mode and, after a
    train-mode block, every buffer's value (`modules`: model.modules() when the caller has
    that list already). A `torch.export` module cannot change mode: it runs as it was
    exported."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    flags = [(m, m.training) for m in (model.modules() if modules is None else modules)]
    want = mode == "train"
    saved = []
    if want:  # BN updates its statistics in place: keep copies to put back
        saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        if any(flag != want for _, flag in flags):
            model.train(want)
    except NotImplementedError:  # torch.export modules keep the mode they were exported in
        pass
    try:
        yield model
    finally:
        for m, flag in flags:
            if m.training != flag:
                m.training = flag
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
