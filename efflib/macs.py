"""Multiply-accumulates of each ATen op that has them, fused or not.

Conventions of lecture 02 (MIT 6.5940, Han): one MAC per product that is summed,
bias and activation functions not counted, a grouped conv divided by its groups.
Fused kernels count the matrix products they fuse: attention's Q K^T and A V
(dense, also when causal or masked), the in- and out-projections of
`nn.MultiheadAttention`'s fast path, the feed-forward of the encoder layer's fast
path, and the gate products of an LSTM (mkldnn). What they also compute
(softmax, layer norm, the gates' sigmoids) is elementwise work that these fused
ops do not report, so it is counted as zero. Every other op has 0 MACs and is
booked by efflib.profiler as an elementwise op or a free one.
"""

import math
from collections.abc import Callable

import torch

aten = torch.ops.aten


def _conv(args, out) -> int:
    # weight (c_out, c_in/g, kh, kw), or (c_in, c_out/g, kh, kw) when transposed:
    # each output (each input, when transposed) meets one filter's worth of weights
    return (args[0] if args[6] else out).numel() * math.prod(args[1].shape[1:])


def _mm(a, b) -> int:          # (n, k) @ (k, m)
    return a.shape[0] * a.shape[1] * b.shape[1]


def _bmm(a, b) -> int:         # (b, n, k) @ (b, k, m)
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _attention(q, k, v, heads_first: bool = True) -> int:
    """Q K^T and A V: q (B, H, L, E), k (B, H, S, E), v (B, H, S, Ev); or (B, L, H, E)."""
    s = k.shape[-2] if heads_first else k.shape[1]
    return math.prod(q.shape[:-1]) * s * (q.shape[-1] + v.shape[-1])


def _native_mha(args, out) -> int:
    """MultiheadAttention's fast path: q/k/v projections, attention, out projection."""
    q, k = args[0], args[1]                                   # (B, L, E), (B, S, E)
    e = args[3]
    b, l, s = q.shape[0], q.shape[-2], k.shape[-2]
    return b * ((l + 2 * s) * e * e + 2 * l * s * e + l * e * e)


def _lengths(src: torch.Tensor) -> list[int]:
    """Each sequence's length: src (B, L, E), or a nested tensor of B (L_i, E) sequences
    (nn.TransformerEncoder packs a padded batch that way, and pads only at the end)."""
    if src.is_nested:
        return src._nested_tensor_size()[:, 0].tolist()
    return [src.shape[1]] * src.shape[0]


def _encoder_layer(args, out) -> int:
    """TransformerEncoderLayer's fast path: self-attention plus the two FFN linears."""
    src, e, ffn = args[0], args[1], args[14].shape[0]        # src (B, L, E)
    return sum(4 * n * e * e + 2 * n * n * e + 2 * n * e * ffn for n in _lengths(src))


def _rnn_layer(args, out) -> int:
    """One mkldnn RNN layer: every step multiplies the input and the hidden state by the
    stacked gate weights w_ih (G*H, in) and w_hh (G*H, H)."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    steps = x.numel() // x.shape[-1]                           # time x batch
    return steps * (w_ih.numel() + w_hh.numel())


def _trilinear(args, out) -> int:
    """nn.Bilinear: every product of the broadcast (N, out, in1, in2) volume is summed."""
    shape = [1] * (args[0].dim() + len(args[3]))
    for t, expand in ((args[0], args[3]), (args[1], args[4]), (args[2], args[5])):
        dims = [d for d in range(len(shape)) if d not in expand]
        for d, size in zip(dims, t.shape, strict=True):
            shape[d] = max(shape[d], size)
    return math.prod(shape)


FORMULAS: dict = {
    aten.convolution.default: _conv,
    aten._convolution.default: _conv,
    aten.mm.default: lambda a, o: _mm(a[0], a[1]),
    aten.addmm.default: lambda a, o: _mm(a[1], a[2]),
    aten.bmm.default: lambda a, o: _bmm(a[0], a[1]),
    aten.baddbmm.default: lambda a, o: _bmm(a[1], a[2]),
    aten.addbmm.default: lambda a, o: _bmm(a[1], a[2]),
    aten.mv.default: lambda a, o: a[0].numel(),                # (n, k) @ (k,)
    aten.addmv.default: lambda a, o: a[1].numel(),
    aten.dot.default: lambda a, o: a[0].numel(),
    aten.vdot.default: lambda a, o: a[0].numel(),
    aten._trilinear.default: _trilinear,
    aten._scaled_dot_product_flash_attention_for_cpu.default:
        lambda a, o: _attention(a[0], a[1], a[2]),
    aten._scaled_dot_product_flash_attention.default: lambda a, o: _attention(a[0], a[1], a[2]),
    aten._scaled_dot_product_efficient_attention.default:
        lambda a, o: _attention(a[0], a[1], a[2]),
    aten._scaled_dot_product_cudnn_attention.default: lambda a, o: _attention(a[0], a[1], a[2]),
    aten._flash_attention_forward.default:
        lambda a, o: _attention(a[0], a[1], a[2], heads_first=False),
    aten._efficient_attention_forward.default:
        lambda a, o: _attention(a[0], a[1], a[2], heads_first=False),
    aten._native_multi_head_attention.default: _native_mha,
    aten._transformer_encoder_layer_fwd.default: _encoder_layer,
    aten.mkldnn_rnn_layer.default: _rnn_layer,
}


def formula(func) -> Callable | None:
    """The MAC formula of an ATen op overload, or None when it has no MACs."""
    return FORMULAS.get(func)
