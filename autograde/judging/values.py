"""Plain values and the errors a verdict can carry.

Every comparison first turns the student's value into a plain Python or torch
value (exact `int`, `float`, a plain `torch.Tensor` copy), so an object whose
`__eq__` always answers True, or a tensor subclass, cannot pass.
"""

import numbers
from collections.abc import Sequence

import torch


class CheckFailed(AssertionError):
    """A graded check found a wrong answer; the message says what to fix."""


class NotAnswered(CheckFailed):
    """The question is not answered yet: its answer is still what the lab starts it as (None,
    or a function that raises NotImplementedError), which is not a wrong answer."""


class JudgeError(RuntimeError):
    """The kernel's answer is not a valid reply (malformed, too big, or missing)."""


def fail(message: str) -> None:
    raise CheckFailed(message)


def as_int(value, what: str) -> int:
    """An exact int from an int-like answer (int, numpy int, 1-element integer tensor)."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            plain = value.as_subclass(torch.Tensor).detach()
            if plain.numel() != 1 or plain.is_floating_point() or plain.is_complex():
                fail(f"{what} should be an integer, got a tensor of dtype {plain.dtype} "
                     f"and shape {tuple(plain.shape)}")
            return int(plain.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = " (use // for floor division)" if isinstance(value, float) else ""
        fail(f"{what} should be an int, got {type(value).__name__} {value!r}{hint}")
    # int.__index__ reads the stored value of an int subclass, ignoring its overrides
    result = int.__index__(value) if isinstance(value, int) else int(value)
    if type(result) is not int:
        fail(f"{what} should be a plain int, got {type(result).__name__}")
    return result


def as_float(value, what: str) -> float:
    """An exact float from a real-number answer."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            plain = value.as_subclass(torch.Tensor).detach()
            if plain.numel() != 1:
                fail(f"{what} should be one number, got shape {tuple(plain.shape)}")
            return float(plain.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} should be a number, got {type(value).__name__} {value!r}")
    result = float.__float__(value) if isinstance(value, float) else float(value)
    if type(result) is not float:
        fail(f"{what} should be a plain float, got {type(result).__name__}")
    return result


def as_int_tuple(value, what: str) -> tuple[int, ...]:
    """A tuple of exact ints from a shape-like answer (tuple, list, torch.Size)."""
    if isinstance(value, str) or not isinstance(value, Sequence | torch.Size):
        fail(f"{what} should be a tuple of ints, got {type(value).__name__} {value!r}")
    return tuple(as_int(v, f"{what}[{i}]") for i, v in enumerate(tuple(value)))


def as_plain_tensor(value, what: str) -> torch.Tensor:
    """A plain CPU copy of a tensor answer (dtype kept), refusing subclasses' overrides."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    with torch._C.DisableTorchFunctionSubclass():
        return value.as_subclass(torch.Tensor).detach().cpu().clone()


def as_tensor(value, what: str) -> torch.Tensor:
    """A plain float64 CPU copy of a tensor answer, refusing subclasses' overrides."""
    return as_plain_tensor(value, what).to(torch.float64)
