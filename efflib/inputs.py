"""Bad input named before anything is computed: NaN, infinity, emptiness, a bad scale.

efflib's quantization and pruning functions call these first, so that a bad tensor
gets an error naming the argument and what is wrong with it, never a result of NaNs
or a crash deep inside torch.
"""

import numbers

import torch

_FLOAT32_MAX = torch.finfo(torch.float32).max


def tensor(x, name: str, who: str) -> torch.Tensor:
    """`x` itself, once it is known to be a tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def count(value, name: str, who: str, minimum: int = 1) -> int:
    """`value` as an int, once it is known to be an integer (not a bool) of at least
    `minimum`; NumPy's integers count."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{who}: {name} must be at least {minimum}, got {value}")
    return int(value)


def _where(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def finite(x, name: str, who: str, *, empty: bool = True) -> torch.Tensor:
    """`x`, refused when it holds NaN or infinite values, lies beyond float32's range
    (quantization computes in float32), or, unless `empty`, has no elements."""
    x = tensor(x, name, who)
    if x.numel() == 0 and not empty:
        raise ValueError(f"{who}: {name} is empty (shape {tuple(x.shape)}): there is nothing "
                         "to take a range or a magnitude from")
    if not (x.is_floating_point() or x.is_complex()) or x.numel() == 0:
        return x
    d = x.detach()
    bad = ~torch.isfinite(d)
    if bool(bad.any()):
        nan = int(torch.isnan(d).sum())
        raise ValueError(f"{who}: {name} has {nan} NaN and {int(bad.sum()) - nan} infinite "
                         f"values (the first at index {_where(bad)}): find where they came "
                         "from (a diverged training, a division by zero) before quantizing")
    if d.dtype == torch.float64 and bool((huge := d.abs() > _FLOAT32_MAX).any()):
        raise ValueError(f"{who}: {name} holds values beyond float32's range (the first at "
                         f"index {_where(huge)}): efflib quantizes in float32")
    return x


def scale_and_zero_point(scale, zero_point, grid: tuple[int, int] | None, who: str
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The scale (float32) and zero point (int64) as tensors, refused unless every scale is
    a positive finite number and every zero point an integer (on the `grid` when given)."""
    s = torch.as_tensor(scale, dtype=torch.float32)
    if s.numel() == 0:
        raise ValueError(f"{who}: the scale is empty")
    if not bool((torch.isfinite(s) & (s > 0)).all()):
        at = "" if s.dim() == 0 else f" (channel {_where(~(torch.isfinite(s) & (s > 0)))[0]})"
        raise ValueError(f"{who}: every scale must be a positive finite number{at}; a scale of "
                         "0 would divide by zero")
    z_raw = torch.as_tensor(zero_point)
    if z_raw.is_floating_point() and not bool((z_raw == torch.round(z_raw)).all()):
        raise ValueError(f"{who}: the zero point must be an integer")
    z = z_raw.to(torch.int64)
    if grid is None:
        return s, z
    qmin, qmax = grid
    if not bool(((z >= qmin) & (z <= qmax)).all()):
        at = "" if z.dim() == 0 else f" (channel {_where((z < qmin) | (z > qmax))[0]})"
        raise ValueError(f"{who}: the zero point must lie on the grid [{qmin}, {qmax}]{at}, "
                         "or zero would not be representable")
    return s, z


def per_channel(t: torch.Tensor, x: torch.Tensor, axis: int | None, what: str, who: str
                ) -> None:
    """Refuse per-channel parameters that do not match `x` along `axis`."""
    if axis is None:
        if t.numel() != 1:
            raise ValueError(f"{who}: {t.numel()} {what} values given without an axis; pass "
                             "axis= for per-channel parameters")
        return
    if not -x.dim() <= axis < x.dim():
        raise ValueError(f"{who}: axis {axis} is out of range for a {x.dim()}-d tensor")
    if t.numel() not in (1, x.shape[axis]):
        raise ValueError(f"{who}: {t.numel()} {what} values for {x.shape[axis]} channels "
                         f"along axis {axis}")
