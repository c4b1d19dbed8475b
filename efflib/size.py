"""Bytes needed to store a model's parameters: any bit width, per-tensor widths, sparse formats.

Model size = #parameters x bit width (lecture 02). A pruned tensor only saves space
if its zeros are not stored, and then the positions of the nonzeros must be: a
bitmask costs one bit per element, CSR one column index per nonzero plus one
pointer per row (Han et al., Deep Compression, https://arxiv.org/abs/1510.00149).
"""

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn

from efflib.graded import reference

FORMATS = ("dense", "bitmask", "csr")


@reference("model_size")
def tensor_bits(t: torch.Tensor, bits: int = 32, fmt: str = "dense", index_bits: int = 32) -> int:
    """Bits to store `t` with `bits`-bit values in format `fmt` (dense, bitmask or csr).

    CSR views a tensor as a matrix of shape (size(0), rest): a conv weight
    (c_out, c_in, kh, kw) has c_out rows; a 1-D tensor is one row.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
        raise ValueError(f"bits must be a positive int, got {bits!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    n = t.numel()
    if fmt == "dense":
        return n * bits
    nnz = int(torch.count_nonzero(t))
    if fmt == "bitmask":
        return nnz * bits + n
    rows = t.shape[0] if t.dim() > 1 else 1
    return nnz * (bits + index_bits) + (rows + 1) * index_bits


def _bits_for(name: str, bits: int | Mapping[str, int] | None, t: torch.Tensor) -> int:
    """Bit width of parameter `name`: the longest matching name prefix in `bits` wins;
    None means the tensor's own dtype width (16 for fp16/bf16, 8 for int8)."""
    if bits is None:
        return t.element_size() * 8
    if isinstance(bits, Mapping):
        matches = [k for k in bits if name == k or name.startswith(k + ".") or k == ""]
        if not matches:
            raise KeyError(f"no bit width for parameter {name!r}: add it, a module prefix "
                           "of it, or a default under the key ''")
        return bits[max(matches, key=len)]
    return bits


@reference("model_size")
def model_size(params: nn.Module | Iterable[tuple[str, torch.Tensor]],
               bits: int | Mapping[str, int] | None = None, fmt: str = "dense",
               index_bits: int = 32) -> int:
    """Bytes to store every parameter (each tensor rounded up to whole bytes).

    Args:
        params: a model, or (name, tensor) pairs such as `model.named_parameters()`.
        bits: None (the default) stores each tensor at its own dtype's width; an int is
            one width for all; {name prefix: width}, e.g. {"": 8, "fc": 32}, keeps the
            layer named fc at 32 bits and stores the rest at 8.
        fmt: "dense" stores every element; "bitmask" and "csr" store only nonzeros
            plus their positions.
        index_bits: width of a CSR column index or row pointer.
    """
    named = params.named_parameters() if isinstance(params, nn.Module) else params
    if isinstance(named, str | bytes | torch.Tensor) or not hasattr(named, "__iter__"):
        raise TypeError(f"model_size: params must be a model or (name, tensor) pairs, got "
                        f"{type(params).__name__}")
    named = list(named)
    for pair in named:
        if not (isinstance(pair, tuple | list) and len(pair) == 2
                and isinstance(pair[1], torch.Tensor)):
            raise TypeError(f"model_size: params must be (name, tensor) pairs, such as "
                            f"model.named_parameters(); got an item {pair!r:.60}")
    return sum(math.ceil(tensor_bits(t.detach(), _bits_for(name, bits, t), fmt, index_bits) / 8)
               for name, t in named)


@reference("model_size")
def shared_weight_bits(t: torch.Tensor, bits: int, fmt: str = "dense", index_bits: int = 32,
                       centroid_bits: int = 32) -> int:
    """Bits to store `t` as `bits`-bit k-means indices plus its codebook of 2^bits centroids
    (Deep Compression); in bitmask or csr format pruned zeros keep no index."""
    return tensor_bits(t, bits, fmt, index_bits) + 2**bits * centroid_bits
