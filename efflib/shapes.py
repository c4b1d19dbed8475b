"""Shape arithmetic for convolution, pooling and receptive fields.

Conventions follow PyTorch (`nn.Conv2d`, `nn.ConvTranspose2d`, `nn.MaxPool2d`)
and Dumoulin & Visin, "A guide to convolution arithmetic for deep learning",
https://arxiv.org/abs/1603.07285.
"""

from collections.abc import Iterable, Sequence

from efflib.graded import reference


def _check_int(name: str, value, minimum: int) -> int:
    """Return `value` as an int, or raise naming the argument and the bound."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@reference("conv_output_size")
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis, as nn.Conv2d computes it."""
    size = _check_int("size", size, 1)
    kernel = _check_int("kernel", kernel, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    span = dilation * (kernel - 1) + 1  # input positions one output reads
    if size + 2 * padding < span:
        raise ValueError(
            f"kernel spans {span} positions (kernel={kernel}, dilation={dilation}) but the "
            f"padded input has only {size + 2 * padding} (size={size}, padding={padding})"
        )
    return (size + 2 * padding - span) // stride + 1


@reference("conv_transpose_output_size")
def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                               output_padding: int = 0, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis (nn.ConvTranspose2d)."""
    size = _check_int("size", size, 1)
    kernel = _check_int("kernel", kernel, 1)
    stride = _check_int("stride", stride, 1)
    padding = _check_int("padding", padding, 0)
    output_padding = _check_int("output_padding", output_padding, 0)
    dilation = _check_int("dilation", dilation, 1)
    if output_padding >= max(stride, dilation):
        raise ValueError(
            f"output_padding must be smaller than stride or dilation, got "
            f"output_padding={output_padding}, stride={stride}, dilation={dilation}"
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(f"padding={padding} removes the whole output (length {out})")
    return out


def pool_output_size(size: int, kernel: int, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of max/avg pooling along one axis (stride defaults to kernel)."""
    stride = kernel if stride is None else stride
    if not ceil_mode:
        return conv_output_size(size, kernel, stride, padding, dilation)
    _check_int("padding", padding, 0)
    if 2 * padding > kernel:
        raise ValueError(f"padding must be at most half the kernel, got {padding} for {kernel}")
    span = dilation * (kernel - 1) + 1
    out = -(-(size + 2 * padding - span) // stride) + 1
    if (out - 1) * stride >= size + padding:  # last window may not start in the padding
        out -= 1
    return out


def _layer_spec(layer) -> tuple[int, int, int]:
    """Normalise (kernel, stride[, dilation]) or a dict with those keys."""
    if isinstance(layer, dict):
        k, s, d = layer.get("kernel"), layer.get("stride", 1), layer.get("dilation", 1)
    elif isinstance(layer, Sequence) and 1 <= len(layer) <= 3:
        k, s, d = (*layer, 1, 1)[:3]
    else:
        raise TypeError(f"a layer is (kernel, stride[, dilation]) or a dict, got {layer!r}")
    return _check_int("kernel", k, 1), _check_int("stride", s, 1), _check_int("dilation", d, 1)


@reference("receptive_field")
def receptive_fields(layers: Iterable) -> list[int]:
    """Receptive field (in input pixels) after each layer of a stack, first layer first."""
    field, jump, out = 1, 1, []  # jump: input pixels between neighbouring outputs
    for layer in layers:
        kernel, stride, dilation = _layer_spec(layer)
        field += dilation * (kernel - 1) * jump
        jump *= stride
        out.append(field)
    return out


@reference("receptive_field")
def receptive_field(layers: Iterable) -> int:
    """Receptive field of one output of a stack of (kernel, stride[, dilation]) layers."""
    fields = receptive_fields(layers)
    return fields[-1] if fields else 1
