"""Where a model lives, and its inputs moved there: labs run unchanged on a CPU or CUDA.

A lab trains on CUDA when there is one (efflib.train) but builds its example
batches on the CPU; efflib's measuring functions therefore move inputs to the
model's device instead of failing on the mismatch.
"""

from collections.abc import Iterable

import torch
import torch.nn as nn


def model_device(model: nn.Module, tensors: Iterable[torch.Tensor] | None = None
                 ) -> torch.device | None:
    """The one device of the model's parameters and buffers (None if it has none);
    `tensors` are those parameters and buffers when the caller has them already."""
    if tensors is None:
        tensors = [t for m in model.modules()
                   for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"the model is spread over several devices "
                         f"({sorted(map(str, devices))}): move it to one with .to(device)")
    return devices.pop() if devices else None


def to_model_device(model: nn.Module, *inputs: torch.Tensor,
                    tensors: Iterable[torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    """The inputs on the model's device (unchanged when it has no parameters or buffers)."""
    device = model_device(model, tensors)
    if device is None:
        return inputs
    return tuple(t.to(device) if isinstance(t, torch.Tensor) else t for t in inputs)
