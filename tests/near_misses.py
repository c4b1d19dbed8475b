"""Each formula's near misses in Labs 01-04: answers right on the easy cases and wrong on
a quantity the formula depends on (a rectangular kernel, a stride above 1, padding,
dilation, groups, a small variance, the other side of a validity rule, a rounding).
tests/test_near_misses.py runs each through its question's *visible* check, so a student
who writes one sees it fail before grading; the note says which case catches it."""

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace


@dataclass(frozen=True)
class NearMiss:
    """One wrong answer: `code` defines `name`; `run(C, S, f)` calls the visible check of
    checks module C with it (S: the lab's solution, for a check that takes two answers)."""

    lab: str
    name: str
    mistake: str
    code: str
    run: Callable[[ModuleType, SimpleNamespace, Callable], None]


def _one(check: str):
    return lambda C, S, f: getattr(C, check)(f)


def _lab01(name, mistake, code, check):
    return NearMiss("lab01_layers", name, mistake, code, _one(check))


def _lab02(name, mistake, code, check):
    return NearMiss("lab02_metrics", name, mistake, code, _one(check))


LAB01 = [
    _lab01("linear_forward", "bias left out", '''
def linear_forward(x, W, b):
    return x @ W.T
''', "check_linear_forward"),
    _lab01("conv_output_size", "rounded to nearest, not down", '''
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return round((size + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
''', "check_conv_output_size"),
    _lab01("conv_output_size", "rounded up", '''
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return -(-(size + 2 * padding - dilation * (kernel - 1) - 1) // stride) + 1
''', "check_conv_output_size"),
    _lab01("conv_output_size", "padding on one side only", '''
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return (size + padding - dilation * (kernel - 1) - 1) // stride + 1
''', "check_conv_output_size"),
    _lab01("conv_output_size", "a dilated kernel spans d*k", '''
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * kernel) // stride + 1
''', "check_conv_output_size"),
    _lab01("conv_transpose_output_size", "output_padding ignored", '''
def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1
''', "check_conv_transpose_output_size"),
    _lab01("conv_transpose_output_size", "dilation ignored", '''
def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    return (size - 1) * stride - 2 * padding + kernel + output_padding
''', "check_conv_transpose_output_size"),
    _lab01("conv_transpose_output_size", "padding taken off one side only", '''
def conv_transpose_output_size(size, kernel, stride=1, padding=0, output_padding=0, dilation=1):
    return (size - 1) * stride - padding + dilation * (kernel - 1) + output_padding + 1
''', "check_conv_transpose_output_size"),
    _lab01("pad2d", "reflect indexes the width with the height", '''
def pad2d(x, p, mode="zeros"):
    if mode not in ("zeros", "reflect", "replicate"):
        raise ValueError(mode)
    H, W = x.shape[-2:]
    if mode == "zeros":
        out = x.new_zeros(*x.shape[:-2], H + 2 * p, W + 2 * p)
        out[..., p:p + H, p:p + W] = x
        return out
    def index(n, size):  # the source index of padded position n
        i = torch.arange(n + 2 * p) - p
        if mode == "replicate":
            return i.clamp(0, size - 1)
        return (size - 1) - ((size - 1) - i.abs()).abs()
    return x[..., index(H, H), :][..., index(W, H).clamp(max=W - 1)]
''', "check_pad2d"),
    _lab01("receptive_field", "strides ignored", '''
def receptive_field(layers):
    return 1 + sum(k - 1 for k, s in layers)
''', "check_receptive_field"),
    _lab01("receptive_field", "a layer's own stride in its jump", '''
def receptive_field(layers):
    rf, jump = 1, 1
    for k, s in layers:
        jump *= s
        rf += (k - 1) * jump
    return rf
''', "check_receptive_field"),
    _lab01("receptive_field", "the backward recursion run forwards", '''
def receptive_field(layers):
    rf = 1
    for k, s in layers:
        rf = rf * s + (k - s)
    return rf
''', "check_receptive_field"),
    _lab01("conv_weight_shape", "groups divide c_out", '''
def conv_weight_shape(c_in, c_out, kernel, groups=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_in % groups or c_out % groups:
        raise ValueError("groups")
    return (c_out // groups, c_in, kh, kw)
''', "check_conv_weight_shape"),
    _lab01("conv_weight_shape", "kernel sides swapped", '''
def conv_weight_shape(c_in, c_out, kernel, groups=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_in % groups or c_out % groups:
        raise ValueError("groups")
    return (c_out, c_in // groups, kw, kh)
''', "check_conv_weight_shape"),
    _lab01("conv_weight_shape", "only c_in checked against groups", '''
def conv_weight_shape(c_in, c_out, kernel, groups=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_in % groups:
        raise ValueError("groups")
    return (c_out, c_in // groups, kh, kw)
''', "check_conv_weight_shape"),
    _lab01("conv_weight_shape", "only c_out checked against groups", '''
def conv_weight_shape(c_in, c_out, kernel, groups=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_out % groups:
        raise ValueError("groups")
    return (c_out, c_in // groups, kh, kw)
''', "check_conv_weight_shape"),
    _lab01("factorised_params", "both spatial convs map c_in to c_out", '''
def factorised_params(c_in, c_out, k):
    return {"standard": c_in * c_out * k * k, "spatial": 2 * c_in * c_out * k,
            "separable": c_in * k * k + c_in * c_out}
''', "check_factorised_params"),
    _lab01("factorised_params", "the depthwise conv forgotten", '''
def factorised_params(c_in, c_out, k):
    return {"standard": c_in * c_out * k * k, "spatial": c_in * c_out * k + c_out * c_out * k,
            "separable": c_in * c_out}
''', "check_factorised_params"),
    _lab01("conv2d_einsum", "kernel rows and columns swapped", '''
def conv2d_einsum(x, w, stride=1, padding=0):
    if padding:
        x = pad2d(x, padding, "zeros")
    r, s = w.shape[-2:]
    windows = x.unfold(2, r, stride).unfold(3, s, stride)
    return torch.einsum("ncpqsr,mcrs->nmpq", windows, w)
''', "check_conv2d_einsum"),
    _lab01("conv2d_einsum", "the window size read from the kernel height only", '''
def conv2d_einsum(x, w, stride=1, padding=0):
    if padding:
        x = pad2d(x, padding, "zeros")
    r = w.shape[-2]
    windows = x.unfold(2, r, stride).unfold(3, r, stride)
    return torch.einsum("ncpqrs,mcrs->nmpq", windows, w)
''', "check_conv2d_einsum"),
    _lab01("normalize", "eps left out", '''
def normalize(x, kind, num_groups=1, eps=1e-5):
    dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}
    if kind == "group":
        n, c = x.shape[:2]
        g = x.reshape(n, num_groups, -1)
        return ((g - g.mean(-1, keepdim=True)) / g.var(-1, unbiased=False, keepdim=True).sqrt()
                ).reshape(x.shape)
    if kind not in dims:
        raise ValueError(kind)
    d = dims[kind]
    return (x - x.mean(d, keepdim=True)) / x.var(d, unbiased=False, keepdim=True).sqrt()
''', "check_normalize"),
    _lab01("normalize", "eps added to the standard deviation", '''
def normalize(x, kind, num_groups=1, eps=1e-5):
    dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}
    if kind == "group":
        n, c = x.shape[:2]
        g = x.reshape(n, num_groups, -1)
        return ((g - g.mean(-1, keepdim=True))
                / (g.var(-1, unbiased=False, keepdim=True).sqrt() + eps)).reshape(x.shape)
    if kind not in dims:
        raise ValueError(kind)
    d = dims[kind]
    return (x - x.mean(d, keepdim=True)) / (x.var(d, unbiased=False, keepdim=True).sqrt() + eps)
''', "check_normalize"),
    _lab01("normalize", "group norm over all channels (groups ignored)", '''
def normalize(x, kind, num_groups=1, eps=1e-5):
    dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3), "group": (1, 2, 3)}
    if kind not in dims:
        raise ValueError(kind)
    d = dims[kind]
    return (x - x.mean(d, keepdim=True)) / (x.var(d, unbiased=False, keepdim=True) + eps).sqrt()
''', "check_normalize"),
    _lab01("normalize", "the unbiased variance", '''
def normalize(x, kind, num_groups=1, eps=1e-5):
    dims = {"batch": (0, 2, 3), "layer": (1, 2, 3), "instance": (2, 3)}
    if kind == "group":
        n = x.shape[0]
        g = x.reshape(n, num_groups, -1)
        return ((g - g.mean(-1, keepdim=True)) / (g.var(-1, keepdim=True) + eps).sqrt()
                ).reshape(x.shape)
    if kind not in dims:
        raise ValueError(kind)
    d = dims[kind]
    return (x - x.mean(d, keepdim=True)) / (x.var(d, keepdim=True) + eps).sqrt()
''', "check_normalize"),
    NearMiss("lab01_layers", "gelu", "the tanh approximation", '''
def gelu(x):
    return 0.5 * x * (1 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
''', lambda C, S, f: C.check_activation("gelu", f)),
    NearMiss("lab01_layers", "hard_swish", "ReLU where ReLU6 belongs", '''
def hard_swish(x):
    return x * (x + 3).clamp(min=0) / 6
''', lambda C, S, f: C.check_activation("hard_swish", f)),
    NearMiss("lab01_layers", "max_pool2d", "a last partial window kept (ceil mode)", '''
def max_pool2d(x, kernel, stride=None):
    stride = stride or kernel
    H, W = x.shape[-2:]
    P, Q = -(-(H - kernel) // stride) + 1, -(-(W - kernel) // stride) + 1
    out = x.new_empty(*x.shape[:-2], P, Q)
    for i in range(P):
        for j in range(Q):
            win = x[..., i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            out[..., i, j] = win.amax(dim=(-2, -1))
    return out
''', lambda C, S, f: C.check_pool2d("max", f)),
    NearMiss("lab01_layers", "avg_pool2d", "stride ignored", '''
def avg_pool2d(x, kernel, stride=None):
    windows = x.unfold(2, kernel, kernel).unfold(3, kernel, kernel)
    return windows.mean(dim=(-2, -1))
''', lambda C, S, f: C.check_pool2d("avg", f)),
]

LAB02 = [
    _lab02("linear_params", "bias always counted", '''
def linear_params(c_in, c_out, bias=True):
    return c_in * c_out + c_out
''', "check_linear_params"),
    _lab02("conv_params", "a square kernel assumed", '''
def conv_params(c_in, c_out, kernel, groups=1, bias=True):
    k = kernel if isinstance(kernel, int) else kernel[1]
    if c_in % groups or c_out % groups:
        raise ValueError("groups")
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)
''', "check_conv_params"),
    _lab02("conv_params", "only c_in checked against groups", '''
def conv_params(c_in, c_out, kernel, groups=1, bias=True):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_in % groups:
        raise ValueError("groups")
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)
''', "check_conv_params"),
    _lab02("conv_params", "only c_out checked against groups", '''
def conv_params(c_in, c_out, kernel, groups=1, bias=True):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    if c_out % groups:
        raise ValueError("groups")
    return c_out * (c_in // groups) * kh * kw + (c_out if bias else 0)
''', "check_conv_params"),
    _lab02("model_size_bytes", "a partly used byte dropped", '''
def model_size_bytes(num_params, bits):
    return num_params * bits // 8
''', "check_model_size_bytes"),
    _lab02("linear_macs", "batch ignored", '''
def linear_macs(c_in, c_out, batch=1):
    return c_in * c_out
''', "check_linear_macs"),
    _lab02("linear_macs", "bias adds counted", '''
def linear_macs(c_in, c_out, batch=1):
    return batch * (c_in + 1) * c_out
''', "check_linear_macs"),
    _lab02("conv_macs", "groups ignored", '''
def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return batch * c_out * h_out * w_out * c_in * kh * kw
''', "check_conv_macs"),
    _lab02("conv_macs", "batch ignored", '''
def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return c_out * h_out * w_out * (c_in // groups) * kh * kw
''', "check_conv_macs"),
    _lab02("conv_macs", "a square kernel assumed", '''
def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    k = kernel if isinstance(kernel, int) else kernel[0]
    return batch * c_out * h_out * w_out * (c_in // groups) * k * k
''', "check_conv_macs"),
    _lab02("conv_macs", "the output read as square", '''
def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return batch * c_out * h_out * h_out * (c_in // groups) * kh * kw
''', "check_conv_macs"),
    NearMiss("lab02_metrics", "total_activations", "the input left out", '''
def total_activations(shapes):
    return sum(numel(s) for s in shapes[1:])
''', lambda C, S, f: C.check_activations(f, S.peak_activations)),
    NearMiss("lab02_metrics", "peak_activations", "the largest tensor alone", '''
def peak_activations(shapes):
    return max(numel(s) for s in shapes)
''', lambda C, S, f: C.check_activations(S.total_activations, f)),
    _lab02("achieved_gflops", "a MAC counted as one FLOP", '''
def achieved_gflops(macs, seconds):
    return macs / seconds / 1e9
''', "check_achieved_gflops"),
    NearMiss("lab02_metrics", "arithmetic_intensity", "MACs, not FLOPs, per byte", '''
def arithmetic_intensity(macs, nbytes):
    return macs / nbytes
''', lambda C, S, f: C.check_roofline(f, S.roofline_seconds)),
    NearMiss("lab02_metrics", "roofline_seconds", "compute and memory times added", '''
def roofline_seconds(flops, nbytes, peak_flops, bandwidth):
    return flops / peak_flops + nbytes / bandwidth
''', lambda C, S, f: C.check_roofline(S.arithmetic_intensity, f)),
    _lab02("energy_pj", "a MAC priced as its multiply alone", '''
def energy_pj(macs, dram_words, sram_words=0):
    return macs * 3.7 + dram_words * 640.0 + sram_words * 5.0
''', "check_energy"),
]

LAB03 = [
    NearMiss("lab03_architectures", "channel_shuffle", "the inverse permutation", '''
def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    if c % groups:
        raise ValueError("groups")
    return x.reshape(n, c // groups, groups, h, w).transpose(1, 2).reshape(n, c, h, w)
''', _one("check_channel_shuffle")),
    NearMiss("lab03_architectures", "feature_sizes", "odd sides rounded down", '''
def feature_sizes(side):
    sizes, h = [], side
    for i, c in enumerate((24, 24, 48, 96, 192, 512)):
        if i < 5:
            h = h // 2
        sizes.append((c, h, h))
    return sizes
''', _one("check_edge_sizes")),
    NearMiss("lab03_architectures", "rotate_shuffle", "rotated the other way", '''
def rotate_shuffle(x):
    c = x.shape[1]
    if c % 4:
        raise ValueError("channels")
    return torch.cat((x[:, c // 4:], x[:, :c // 4]), dim=1)
''', _one("check_rotate_shuffle")),
    NearMiss("lab03_architectures", "contiguous_runs", "a run counted per descent only", '''
def contiguous_runs(perm):
    return 1 + sum(1 for a, b in zip(perm, perm[1:]) if b < a) if perm else 0
''', _one("check_contiguous_runs")),
]

LAB04 = [
    NearMiss("lab04_pruning", "magnitude_mask", "the kept count truncated, not rounded", '''
def magnitude_mask(weight, sparsity):
    if not 0 <= sparsity <= 1:
        raise ValueError("sparsity")
    flat = weight.abs().flatten()
    keep = int((1 - sparsity) * flat.numel())
    order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), i))
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.reshape(weight.shape)
''', _one("check_magnitude_mask")),
    NearMiss("lab04_pruning", "magnitude_mask", "ties kept at the higher index", '''
def magnitude_mask(weight, sparsity):
    if not 0 <= sparsity <= 1:
        raise ValueError("sparsity")
    flat = weight.abs().flatten()
    keep = round((1 - sparsity) * flat.numel())
    order = sorted(range(flat.numel()), key=lambda i: (-float(flat[i]), -i))
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    mask[order[:keep]] = True
    return mask.reshape(weight.shape)
''', _one("check_magnitude_mask")),
    NearMiss("lab04_pruning", "sparse_bytes", "CSR without the last row pointer", '''
def sparse_bytes(weight, bits, fmt, index_bits=32):
    n, nnz = weight.numel(), int((weight != 0).sum())
    rows = weight.shape[0] if weight.dim() > 1 else 1
    total = {"dense": n * bits, "bitmask": nnz * bits + n,
             "csr": nnz * (bits + index_bits) + rows * index_bits}[fmt]
    return -(-total // 8)
''', _one("check_sparse_bytes")),
    NearMiss("lab04_pruning", "sparse_bytes", "a 1-D tensor's CSR rows are its elements", '''
def sparse_bytes(weight, bits, fmt, index_bits=32):
    n, nnz = weight.numel(), int((weight != 0).sum())
    rows = weight.shape[0]
    total = {"dense": n * bits, "bitmask": nnz * bits + n,
             "csr": nnz * (bits + index_bits) + (rows + 1) * index_bits}[fmt]
    return -(-total // 8)
''', _one("check_sparse_bytes")),
    NearMiss("lab04_pruning", "sparse_bytes", "the mask and the values rounded to bytes apart",
             '''
def sparse_bytes(weight, bits, fmt, index_bits=32):
    n, nnz = weight.numel(), int((weight != 0).sum())
    rows = weight.shape[0] if weight.dim() > 1 else 1
    if fmt == "bitmask":
        return -(-nnz * bits // 8) + -(-n // 8)
    total = {"dense": n * bits,
             "csr": nnz * (bits + index_bits) + (rows + 1) * index_bits}[fmt]
    return -(-total // 8)
''', _one("check_sparse_bytes")),
    NearMiss("lab04_pruning", "histogram", "values equal to hi left out", '''
def histogram(values, bins, lo, hi):
    v = values.double()
    inside = (v >= lo) & (v < hi)
    idx = ((v[inside] - lo) / (hi - lo) * bins).long().clamp(max=bins - 1)
    return torch.bincount(idx, minlength=bins)
''', _one("check_histogram")),
    NearMiss("lab04_pruning", "histogram", "values outside the range clamped into the end bins",
             '''
def histogram(values, bins, lo, hi):
    v = values.double().clamp(lo, hi)
    idx = ((v - lo) / (hi - lo) * bins).long().clamp(max=bins - 1)
    return torch.bincount(idx, minlength=bins)
''', _one("check_histogram")),
]

ALL = LAB01 + LAB02 + LAB03 + LAB04

# the answer under another name: a library's own version of what the question asks for
BORROWED = [
    _lab01("conv_output_size", "torch's pooling size rule", '''
from torch._meta_registrations import pooling_output_shape


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return pooling_output_shape(size, kernel, padding, stride, dilation, False)
''', "check_conv_output_size"),
    _lab01("conv_output_size", "efflib's pooling size", '''
from efflib.shapes import pool_output_size


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    return pool_output_size(size, kernel, stride, padding, dilation)
''', "check_conv_output_size"),
    NearMiss("lab01_layers", "gelu", "torch's reference gelu", '''
from torch._refs.nn.functional import gelu
''', lambda C, S, f: C.check_activation("gelu", f)),
    NearMiss("lab01_layers", "normalize", "torch's decompositions of the norms", '''
from torch._decomp import decompositions as _decomp
from torch._refs.nn import functional as _refs


def normalize(x, kind, num_groups=1, eps=1e-5):
    n, c = x.shape[:2]
    if kind == "batch":
        return _decomp.native_batch_norm(x, None, None, None, None, True, 0.1, eps)[0]
    if kind == "layer":
        return _refs.layer_norm(x, x.shape[1:], eps=eps)
    if kind == "instance":
        return _decomp.native_group_norm(x, None, None, n, c, x[0, 0].numel(), c, eps)[0]
    if kind == "group":
        return _decomp.native_group_norm(x, None, None, n, c, x[0, 0].numel(), num_groups,
                                         eps)[0]
    raise ValueError(kind)
''', _one("check_normalize")),
    NearMiss("lab01_layers", "sigmoid", "torch's softmax over (x, 0)", '''
def sigmoid(x):
    return torch.softmax(torch.stack([x, torch.zeros_like(x)]), dim=0)[0]
''', lambda C, S, f: C.check_activation("sigmoid", f)),
    _lab02("linear_macs", "torch's FLOP formula for a matrix product", '''
from torch.utils.flop_counter import mm_flop


def linear_macs(c_in, c_out, batch=1):
    return mm_flop([batch, c_in], [c_in, c_out]) // 2
''', "check_linear_macs"),
    _lab02("conv_macs", "torch's FLOP formula for a convolution", '''
from torch.utils.flop_counter import conv_flop_count


def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return conv_flop_count([batch, c_in, h_out + kh - 1, w_out + kw - 1],
                           [c_out, c_in // groups, kh, kw], [batch, c_out, h_out, w_out],
                           transposed=False) // 2
''', "check_conv_macs"),
    _lab02("conv_macs", "efflib's MAC rule for a convolution", '''
from types import SimpleNamespace as _Shape

from efflib import macs as _macs


def conv_macs(c_in, c_out, kernel, h_out, w_out, groups=1, batch=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    weight = _Shape(shape=(c_out, c_in // groups, kh, kw))
    out = _Shape(numel=lambda: batch * c_out * h_out * w_out)
    return _macs._conv([None, weight, None, None, None, None, False], out)
''', "check_conv_macs"),
    NearMiss("lab02_metrics", "count_macs_with_hooks", "torch's profiler counting FLOPs", '''
def count_macs_with_hooks(model, x):
    from torch.profiler import profile
    with profile(with_flops=True) as p:
        model(x)
    products = ("aten::conv2d", "aten::addmm")  # the modules' ops, not the functional @
    return sum(e.flops for e in p.events() if e.name in products and e.flops) // 2
''', _one("check_hook_counter")),
    NearMiss("lab03_architectures", "feature_sizes", "efflib's conv output size", '''
from efflib import shapes as _shapes


def feature_sizes(side):
    sizes, h = [], side
    for i, c in enumerate((24, 24, 48, 96, 192, 512)):
        if i < 5:
            h = _shapes.pool_output_size(h, 3, 2, 1)
        sizes.append((c, h, h))
    return sizes
''', _one("check_edge_sizes")),
    NearMiss("lab03_architectures", "channel_shuffle", "torch's channel shuffle", '''
def channel_shuffle(x, groups):
    if x.shape[1] % groups:
        raise ValueError("groups must divide the channels")
    return nn.ChannelShuffle(groups)(x)
''', _one("check_channel_shuffle")),
    NearMiss("lab04_pruning", "magnitude_mask", "torch's L1 pruning mask", '''
import torch.nn.utils.prune as _tprune


def magnitude_mask(weight, sparsity):
    if not 0 <= sparsity <= 1:
        raise ValueError("sparsity")
    drop = weight.numel() - round((1 - sparsity) * weight.numel())
    order = sorted(range(weight.numel()), key=lambda i: (float(weight.flatten()[i].abs()), -i))
    w = weight.clone().flatten()
    w[order[:drop]] = 0  # ties: the lower index is kept, then torch decides among the rest
    keep = torch.ones_like(weight).flatten()
    return _tprune.L1Unstructured(amount=drop).compute_mask(
        weight.flatten() * (w != 0) + (w != 0) * 1e-30, keep).bool().reshape(weight.shape)
''', _one("check_magnitude_mask")),
    NearMiss("lab04_pruning", "histogram", "NumPy's histogram", '''
import numpy as _np


def histogram(values, bins, lo, hi):
    return torch.from_numpy(_np.histogram(values.double().numpy(), bins, (lo, hi))[0])
''', _one("check_histogram")),
]


def code_of(name: str, mistake: str) -> str:
    """The code of the near miss of answer `name` that makes `mistake`."""
    (miss,) = [m for m in ALL + BORROWED if m.name == name and m.mistake == mistake]
    return miss.code
