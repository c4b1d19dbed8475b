"""Checks for Lab 01, layers and shape arithmetic.

Every reference is PyTorch itself: layers built on the meta device for shapes
and parameter counts, `F.*` functions for values, gradients for receptive
fields. Visible checks use a few fixed cases; hidden ones (`hidden=True`) use
seeded random cases the student has not seen.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from autograde.checks.api import (
    TORCH_REFERENCES,
    Withheld,
    as_int_tuple,
    call,
    call_traced,
    check,
    expect_answer,
    expect_close,
    expect_equal,
    expect_int,
    expect_raises,
    fail,
    fmt_call,
    formula_watch,
    rng,
    torch_gen,
    watch,
)

CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d",
            "conv_transpose2d", "conv_transpose3d", "im2col", "col2im", F.unfold, F.fold)
POOL_OPS = ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool2d_with_indices",
            "adaptive_avg_pool2d", "adaptive_max_pool2d", "_max_pool2d", "_adaptive_avg_pool2d",
            "lp_pool2d", "fractional_max_pool2d")
SHAPE_OPS = CONV_OPS + POOL_OPS
PAD_OPS = ("pad", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "_pad_circular",
           "reflection_pad1d", "replication_pad1d", "zero_pad2d")
NORM_OPS = ("batch_norm", "layer_norm", "group_norm", "instance_norm", "native_batch_norm",
            "native_layer_norm", "native_group_norm", "_native_batch_norm_legit",
            "rms_norm", "normalize")
ACT_OPS = ("relu", "relu_", "relu6", "sigmoid", "sigmoid_", "expit", "special_expit", "tanh",
           "tanh_", "hardswish", "hardswish_", "hardsigmoid", "hardtanh", "hardtanh_", "gelu",
           "silu", "elu", "leaky_relu", "mish", "softplus", "threshold", "threshold_",
           # the rest of torch's activations: a softmax over (x, 0) is a sigmoid
           "softmax", "_softmax", "log_softmax", "_log_softmax", "softmin", "logsigmoid",
           "log_sigmoid_forward", "glu", "selu", "celu", "rrelu", "prelu", "hardshrink",
           "softshrink", "tanhshrink", "softsign", "logit")


# efflib's shape arithmetic: its pooling size is the conv formula under another name
EFFLIB_SHAPES = ("efflib.shapes",)
# the clean room (judging.clean_room) has none of these
WITHHELD = Withheld(topics=("conv_output_size", "conv_transpose_output_size", "receptive_field"),
                    modules=EFFLIB_SHAPES)


def refusing(forbidden=(), topics=()):
    """The watch of a Lab 01 answer: the `forbidden` torch functions and efflib `topics`,
    and torch's and efflib's own shape formulas and reference ops in Python, refused."""
    return watch(forbidden=forbidden, topics=topics, modules=TORCH_REFERENCES + EFFLIB_SHAPES,
                 call_only=TORCH_REFERENCES)


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


# --- Q1. Linear layer ---------------------------------------------------------------

@check
def check_linear_forward(fn, hidden: bool = False) -> None:
    """linear_forward(x, W, b) must equal F.linear on (n, c_i) inputs."""
    r = rng(hidden, "linear")
    cases = [(2, 3, 4)] + [(r.randint(1, 9), r.randint(1, 17), r.randint(1, 17))
                          for _ in range(12 if hidden else 3)]
    for n, ci, co in cases:
        g = torch_gen(r)
        x, w, b = (torch.randn(n, ci, generator=g), torch.randn(co, ci, generator=g),
                   torch.randn(co, generator=g))
        case = f"linear_forward(x {tuple(x.shape)}, W {tuple(w.shape)}, b {tuple(b.shape)})"
        with refusing(forbidden=("linear", "bilinear", "addmm")):
            got = call_traced(fn, case, x.clone(), w.clone(), b.clone())
        expect_close(got.value, F.linear(x, w, b), case,
                     hint="The output has shape (n, c_o): multiply by W transposed, add b.")
        got.follows(F.linear)


# --- Q2. Convolution output sizes -----------------------------------------------------

def _conv_size(size, kernel, stride, padding, dilation) -> int:
    out = F.conv1d(_meta(1, 1, size), _meta(1, 1, kernel), stride=stride, padding=padding,
                   dilation=dilation)
    return out.shape[-1]


def _conv_cases(r, count):
    cases = []
    while len(cases) < count:
        size, k, s = r.randint(1, 64), r.randint(1, 7), r.randint(1, 4)
        p, d = r.randint(0, 3), r.choice([1, 1, 2, 3])
        if size + 2 * p >= d * (k - 1) + 1:
            cases.append(dict(size=size, kernel=k, stride=s, padding=p, dilation=d))
    return cases


@check
def check_conv_output_size(fn, hidden: bool = False) -> None:
    """conv_output_size(size, kernel, stride, padding, dilation) must match nn.Conv2d."""
    fixed = [dict(size=224, kernel=11, stride=4, padding=2, dilation=1),  # AlexNet conv1
             dict(size=27, kernel=5, stride=1, padding=2, dilation=1),
             dict(size=4, kernel=3, stride=1, padding=0, dilation=1),
             dict(size=7, kernel=3, stride=2, padding=1, dilation=1),
             dict(size=9, kernel=3, stride=1, padding=0, dilation=2),
             dict(size=10, kernel=3, stride=4, padding=0, dilation=1)]  # 7/4: floor, not round
    cases = fixed + _conv_cases(rng(hidden, "conv"), 200 if hidden else 5)
    for kw in cases:
        case = fmt_call("conv_output_size", **kw)
        with refusing(forbidden=SHAPE_OPS, topics=("conv_output_size",)):
            got = call(fn, case, **kw)
        hint = "A dilated kernel spans d*(k-1)+1 inputs." if kw["dilation"] > 1 else ""
        expect_int(got, _conv_size(**kw), case, hint=hint)


def _conv_t_size(size, kernel, stride, padding, output_padding, dilation) -> int:
    out = F.conv_transpose1d(_meta(1, 1, size), _meta(1, 1, kernel), stride=stride,
                             padding=padding, output_padding=output_padding, dilation=dilation)
    return out.shape[-1]


@check
def check_conv_transpose_output_size(fn, hidden: bool = False) -> None:
    """conv_transpose_output_size(...) must match nn.ConvTranspose2d."""
    r = rng(hidden, "convT")
    cases = [dict(size=4, kernel=5, stride=1, padding=0, output_padding=0, dilation=1),
             dict(size=7, kernel=4, stride=2, padding=1, output_padding=0, dilation=1),
             dict(size=7, kernel=3, stride=2, padding=1, output_padding=1, dilation=1)]
    while len(cases) < (200 if hidden else 6):
        s, d = r.randint(1, 4), r.choice([1, 1, 2])
        kw = dict(size=r.randint(1, 40), kernel=r.randint(1, 7), stride=s,
                  padding=r.randint(0, 3), output_padding=r.randrange(max(s, d)), dilation=d)
        try:
            _conv_t_size(**kw)  # torch refuses settings whose output would be empty
        except RuntimeError:
            continue
        cases.append(kw)
    for kw in cases:
        case = fmt_call("conv_transpose_output_size", **kw)
        with refusing(forbidden=SHAPE_OPS, topics=("conv_transpose_output_size",)):
            got = call(fn, case, **kw)
        expect_int(got, _conv_t_size(**kw), case,
                   hint="A transposed conv maps size back the way a conv with the same "
                        "settings maps it forward.")


def autoencoder_decoder() -> nn.Sequential:
    """The conv autoencoder decoder from the course notes (input 256 x 4 x 4)."""
    return nn.Sequential(
        nn.ConvTranspose2d(256, 128, 5, stride=1), nn.ReLU(True),
        nn.ConvTranspose2d(128, 64, 9, stride=1), nn.ReLU(True),
        nn.ConvTranspose2d(64, 3, 17, stride=1), nn.Tanh(),
    )


@check
def check_decoder_sizes(sizes) -> None:
    """decoder_sizes: spatial size after each ConvTranspose2d of the decoder, from 4x4."""
    x, expected = _meta(1, 256, 4, 4), []
    for layer in autoencoder_decoder().to("meta"):
        x = layer(x)
        if isinstance(layer, nn.ConvTranspose2d):
            expected.append(x.shape[-1])
    got = as_int_tuple(sizes, "decoder_sizes")
    if len(got) != len(expected):
        fail(f"decoder_sizes should list {len(expected)} sizes, one per ConvTranspose2d; "
             f"got {len(got)}")
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        expect_answer(g, e, f"decoder_sizes[{i}] (after ConvTranspose2d #{i + 1})",
                      hint="Apply conv_transpose_output_size to the size before it, with "
                           "that layer's kernel, stride and padding.")


# --- Q3. Padding ----------------------------------------------------------------------

MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate"}


@check
def check_pad2d(fn, hidden: bool = False) -> None:
    """pad2d(x, p, mode) must equal F.pad(x, (p, p, p, p), mode) for the three modes."""
    r = rng(hidden, "pad")
    lecture = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    cases = [(lecture, 2, m) for m in MODES]
    for _ in range(30 if hidden else 3):
        h, w = r.randint(2, 9), r.randint(2, 9)
        x = torch.randn(r.randint(1, 3), r.randint(1, 4), h, w, generator=torch_gen(r))
        cases += [(x, r.randint(0, min(h, w) - 1), m) for m in MODES]
    for x, p, mode in cases:
        case = fmt_call("pad2d", x, p, mode)
        with refusing(forbidden=PAD_OPS):
            got = call_traced(fn, case, x.clone(), p, mode)
        expect_close(got.value, F.pad(x, (p, p, p, p), mode=MODES[mode]), case, atol=0, rtol=0,
                     hint=f"Compare with the {mode} example in the lab text.")
        got.follows(lambda x, p=p, mode=mode: F.pad(x, (p, p, p, p), mode=MODES[mode]))
    expect_raises(lambda: fn(lecture, 1, "circular-ish"), ValueError,
                  "pad2d with an unknown mode")


# --- Q4. Receptive field --------------------------------------------------------------

def measured_receptive_field(layers) -> int:
    """Receptive field of output 0 of a 1-D conv stack, measured by backpropagation."""
    need = 1
    for k, s in reversed(layers):  # input length that yields at least one output
        need = (need - 1) * s + k
    x = torch.ones(1, 1, need + 3, dtype=torch.float64, requires_grad=True)
    y = x
    for k, s in layers:
        y = F.conv1d(y, torch.ones(1, 1, k, dtype=torch.float64), stride=s)
    y[0, 0, 0].backward()
    return int(torch.nonzero(x.grad[0, 0]).max()) + 1


@check
def check_receptive_field(fn, hidden: bool = False) -> None:
    """receptive_field([(kernel, stride), ...]) must match a measured receptive field."""
    r = rng(hidden, "rf")
    cases = [[(3, 1)] * 2, [(3, 1)] * 3, [(3, 2), (3, 2)],
             [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]]
    cases += [[(r.choice([1, 2, 3, 5, 7]), r.choice([1, 1, 2, 3])) for _ in range(r.randint(1, 6))]
              for _ in range(60 if hidden else 3)]
    for layers in cases:
        case = fmt_call("receptive_field", layers)
        with refusing(forbidden=SHAPE_OPS, topics=("receptive_field",)):
            got = call(fn, case, [tuple(layer) for layer in layers])
        hint = ("Each layer adds (k-1) times the distance, in input pixels, between "
                "neighbouring positions of its own input." if any(s > 1 for _, s in layers)
                else "")
        expect_int(got, measured_receptive_field(layers), case, hint=hint)


# --- Q5. Grouped, depthwise and factorised convolutions -------------------------------

@check
def check_conv_weight_shape(fn, hidden: bool = False) -> None:
    """conv_weight_shape(c_in, c_out, kernel, groups) must equal nn.Conv2d's weight shape."""
    r = rng(hidden, "wshape")
    cases = [(96, 256, 5, 2), (32, 32, 3, 32), (384, 384, 3, 2), (3, 64, (3, 1), 1)]
    while len(cases) < (80 if hidden else 7):
        g = r.choice([1, 2, 3, 4, 8])
        k = r.choice([1, 3, 5, (1, 3), (3, 1), (1, 7)])
        cases.append((g * r.randint(1, 16), g * r.randint(1, 16), k, g))
    for ci, co, k, g in cases:
        case = fmt_call("conv_weight_shape", ci, co, k, groups=g)
        expected = tuple(nn.Conv2d(ci, co, k, groups=g, device="meta").weight.shape)
        with formula_watch(modules=EFFLIB_SHAPES):
            got = as_int_tuple(call(fn, case, ci, co, k, groups=g), case)
        expect_equal(got, expected, case,
                     hint="Each of the g groups sees only c_in/g input channels.")
    for ci, co, g in [(10, 16, 4), (16, 10, 4)]:
        with formula_watch(modules=EFFLIB_SHAPES):
            expect_raises(fn, ValueError, fmt_call("conv_weight_shape", ci, co, 3, groups=g)
                          + " (channels not divisible by groups)", ci, co, 3, groups=g)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@check
def check_factorised_params(fn, hidden: bool = False) -> None:
    """factorised_params(c_in, c_out, k): weights of the three designs, counted by PyTorch."""
    r = rng(hidden, "factor")
    cases = [(128, 128, 3), (32, 64, 5)] + [
        (r.randint(1, 512), r.randint(1, 512), r.choice([3, 5, 7])) for _ in range(
            40 if hidden else 2)]
    for ci, co, k in cases:
        with torch.device("meta"):
            designs = {
                "standard": nn.Conv2d(ci, co, k, bias=False),
                "spatial": nn.Sequential(nn.Conv2d(ci, co, (1, k), bias=False),
                                         nn.Conv2d(co, co, (k, 1), bias=False)),
                "separable": nn.Sequential(nn.Conv2d(ci, ci, k, groups=ci, bias=False),
                                           nn.Conv2d(ci, co, 1, bias=False)),
            }
        case = fmt_call("factorised_params", ci, co, k)
        with formula_watch(modules=EFFLIB_SHAPES):
            got = call(fn, case, ci, co, k)
        if not isinstance(got, dict) or set(got) != set(designs):
            fail(f"{case}: expected a dict with keys {sorted(designs)}, got {got!r}")
        for name, module in designs.items():
            expect_int(got[name], _count(module), f"{case}['{name}']")


# --- Q6. Convolution as an einsum -----------------------------------------------------

@check
def check_conv2d_einsum(fn, hidden: bool = False) -> None:
    """conv2d_einsum(x, w, stride, padding) must equal F.conv2d and use torch.einsum."""
    r = rng(hidden, "einsum")
    cases = [((1, 1, 4, 4), (1, 1, 3, 3), 1, 0), ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1),
             ((1, 3, 11, 11), (8, 3, 5, 5), 2, 2), ((1, 2, 7, 9), (3, 2, 3, 5), 2, 1)]
    while len(cases) < (25 if hidden else 6):
        kh, kw = r.choice([1, 2, 3, 5]), r.choice([1, 2, 3, 5])
        s, p = r.randint(1, 3), r.randint(0, 2)
        h, w = r.randint(kh, 14), r.randint(kw, 14)
        cases.append(((r.randint(1, 3), r.randint(1, 5), h, w), (r.randint(1, 6), 0, kh, kw),
                      s, p))
    for xs, ws, s, p in cases:
        g = torch_gen(r)
        x = torch.randn(*xs, generator=g)
        w = torch.randn(ws[0], xs[1], ws[2], ws[3], generator=g)
        case = fmt_call("conv2d_einsum", x, w, stride=s, padding=p)
        with refusing(forbidden=CONV_OPS) as rec:
            got = call_traced(fn, case, x.clone(), w.clone(), stride=s, padding=p)
        if "einsum" not in rec.called:
            fail(f"{case}: the question asks for torch.einsum; your function never calls it.")
        expect_close(got.value, F.conv2d(x, w, stride=s, padding=p), case, atol=1e-4,
                     hint="Output is (N, M, P, Q); sum over C, R and S (R and S may differ).")
        got.follows(lambda x, w, s=s, p=p: F.conv2d(x, w, stride=s, padding=p))


# --- Q7. Normalisation ----------------------------------------------------------------

def _norm_reference(x, kind, groups, eps):
    if kind == "batch":
        return F.batch_norm(x, None, None, training=True, eps=eps)
    if kind == "layer":
        return F.layer_norm(x, x.shape[1:], eps=eps)
    if kind == "instance":
        return F.instance_norm(x, eps=eps)
    return F.group_norm(x, groups, eps=eps)


@check
def check_normalize(fn, hidden: bool = False) -> None:
    """normalize(x, kind, num_groups, eps) must match torch's batch/layer/instance/group norm."""
    r = rng(hidden, "norm")
    kinds = ("batch", "layer", "instance", "group")
    # two groups of two channels; then values 100x smaller than eps's square root, where
    # leaving eps out, or adding it outside the root, changes the result
    cases = [((2, 4, 3, 5), kind, 2, 3.0, 1e-3) for kind in kinds]
    cases += [((3, 4, 2, 3), kind, 2, 3e-4, 1e-3) for kind in kinds]
    for _ in range(12 if hidden else 2):
        g = r.choice([1, 2, 4])
        shape = (r.randint(2, 4), g * r.randint(1, 3), r.randint(1, 6), r.randint(2, 6))
        cases += [(shape, kind, g, r.choice([3.0, 1e-3]), r.choice([1e-5, 1e-3]))
                  for kind in kinds]
    for shape, kind, groups, scale, eps in cases:
        x = torch.randn(*shape, generator=torch_gen(r)) * scale + scale / 3
        kw = dict(num_groups=groups, eps=eps)
        case = fmt_call("normalize", x, kind, **kw)
        with refusing(forbidden=NORM_OPS):
            got = call_traced(fn, case, x.clone(), kind, **kw)
        expect_close(got.value, _norm_reference(x, kind, groups, eps), case, atol=1e-4,
                     rtol=1e-3,
                     hint="Which axes does this kind average over? Use the biased variance.")
        got.follows(lambda x, kind=kind, g=groups, eps=eps: _norm_reference(x, kind, g, eps))
    expect_raises(lambda: fn(torch.ones(2, 2, 2, 2), "weight"), ValueError,
                  "normalize with an unknown kind")


# --- Q8. Activations and pooling ------------------------------------------------------

ACTIVATIONS = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hard_swish": F.hardswish,
    "gelu": F.gelu,  # exact (erf) form
}


@check
def check_activation(name: str, fn, hidden: bool = False) -> None:
    """The activation `name` must match torch's on a grid and on random inputs."""
    if name not in ACTIVATIONS:
        raise KeyError(f"unknown activation {name!r}; one of {sorted(ACTIVATIONS)}")
    r = rng(hidden, f"act-{name}")
    inputs = [torch.linspace(-8, 8, 161), torch.tensor([-3.0, 0.0, 3.0]),
              torch.tensor([-100.0, -30.0, 30.0, 100.0])]  # where exp() overflows
    inputs += [torch.randn(r.randint(1, 4), r.randint(1, 9), generator=torch_gen(r)) * 4
               for _ in range(10 if hidden else 2)]
    for x in inputs:
        case = fmt_call(name, x)
        with refusing(forbidden=ACT_OPS):
            got = call_traced(fn, case, x.clone())
        expect_close(got.value, ACTIVATIONS[name](x), case, atol=1e-5, rtol=1e-4)
        got.follows(ACTIVATIONS[name])


POOLS = {"max": F.max_pool2d, "avg": F.avg_pool2d}


@check
def check_pool2d(kind: str, fn, hidden: bool = False) -> None:
    """max_pool2d / avg_pool2d(x, kernel, stride) must match torch (no padding)."""
    r = rng(hidden, f"pool-{kind}")
    cases = [((1, 1, 4, 4), 2, None), ((1, 96, 55, 55), 3, 2), ((2, 3, 7, 5), 3, 1),
             ((1, 2, 5, 7), 2, None)]  # a last partial window, which is dropped
    while len(cases) < (30 if hidden else 6):
        k = r.randint(1, 4)
        cases.append(((r.randint(1, 3), r.randint(1, 4), r.randint(k, 12), r.randint(k, 12)), k,
                      r.choice([None, 1, 2, 3])))
    for shape, k, s in cases:
        x = torch.randn(*shape, generator=torch_gen(r))
        case = fmt_call(f"{kind}_pool2d", x, k, stride=s)
        with refusing(forbidden=POOL_OPS + CONV_OPS):
            got = call_traced(fn, case, x.clone(), k, stride=s)
        expect_close(got.value, POOLS[kind](x, k, stride=s), case, atol=1e-5,
                     hint="stride=None means stride = kernel.")
        got.follows(lambda x, k=k, s=s: POOLS[kind](x, k, stride=s))
