"""Where a model lives, and its inputs moved there: labs run unchanged on a CPU or CUDA.

A lab trains on CUDA when there is one (efflib.train) but builds its example
batches on the CPU; efflib's measuring functions therefore move inputs to the
model's device instead of failing on the mismatch.
"""

from collections.abc import Iterable

import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence


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


def _stays(t: torch.Tensor) -> bool:
    """A one-dimensional integer tensor on the CPU is host-side bookkeeping: sequence lengths
    (pack_padded_sequence wants them there), offsets, indices."""
    return t.dim() == 1 and t.device.type == "cpu" and not (
        t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)


def to_model_device(model: nn.Module, *inputs, tensors: Iterable[torch.Tensor] | None = None
                    ) -> tuple:
    """The inputs on the model's device (unchanged when it has no parameters or buffers),
    except one-dimensional integer tensors on the CPU, which stay there; a PackedSequence
    moves as PackedSequence.to moves it (its batch sizes stay on the CPU)."""
    device = model_device(model, tensors)
    if device is None:
        return inputs
    return tuple(v.to(device) if isinstance(v, PackedSequence)
                 or (isinstance(v, torch.Tensor) and not _stays(v)) else v for v in inputs)
