"""Lazy answers that passed before the checks saw through them, as code a student's
notebook holds: tests/test_grading_corpus.py appends each to its answer cell and grades
the notebook; the checks' tests take the functions from here (`defined`). The formula
near misses that passed a visible check come from tests/near_misses.py."""

from near_misses import code_of


def defined(solution, code: str, name: str):
    """The function `name` that `code` defines beside the lab's solution."""
    namespace = dict(vars(solution))
    exec(compile(code, f"<lazy {name}>", "exec"), namespace)  # noqa: S102 - our own code
    return namespace[name]


def quantize_static_with(option: str, why: str) -> str:
    """Lab 08's quantize_onnx, with one of quantize_static's options overridden (`option`:
    the dict item as code): the solution's reader and call, one setting wrong."""
    return f'''
_right_quantize = quantize_onnx


def quantize_onnx(model, images, method):  # {why}
    quantize_static = quantization.quantize_static
    quantization.quantize_static = lambda *a, **k: quantize_static(*a, **{{**k, {option}}})
    try:
        return _right_quantize(model, images, method)
    finally:
        quantization.quantize_static = quantize_static
'''


LAB01 = {
    "q2_conv_size": '''
def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):  # dilation ignored
    return (size + 2 * padding - kernel) // stride + 1
''',
    "q5_weight_shape": '''
def conv_weight_shape(c_in, c_out, kernel, groups=1):  # read off torch's layer, no formula
    return tuple(nn.Conv2d(c_in, c_out, kernel, groups=groups, device="meta").weight.shape)
''',
    "q6_einsum": code_of("conv2d_einsum", "the window size read from the kernel height only"),
    "q7_normalize": code_of("normalize", "eps left out"),
    "q8_pooling": code_of("max_pool2d", "a last partial window kept (ceil mode)"),
    "q8_activations": code_of("gelu", "torch's reference gelu"),
}

LAB02 = {
    "q1_conv_params": '''
def conv_params(c_in, c_out, kernel, groups=1, bias=True):  # groups ignored, square only
    return c_out * c_in * kernel * kernel + (c_out if bias else 0)
''',
    "q5_alexnet_table": '''
_rows = efflib.profile(models.alexnet(variant="lecture").eval(), torch.zeros(1, 3, 224, 224))
_table = [{"weights": r.weights, "macs": r.macs, "activations": r.activations}
          for r in _rows.rows if r.macs]


def alexnet_table():  # efflib's profiler ran when the cell did: the answer reads its rows
    return _table
''',
    "q7_hook_counter": '''
def count_macs_with_hooks(model, x):  # the hooks stay on when the model raises
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.numel() * (m.in_channels // m.groups) * kh * kw
        else:
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    model(x)
    for h in handles:
        h.remove()
    return total
''',
    "q3_macs": code_of("conv_macs", "a square kernel assumed"),
}

LAB03 = {
    "q4_channel_shuffle": code_of("channel_shuffle", "torch's channel shuffle"),
    "q1_vgg_stage": '''
def vgg_stage(c_in, c_out, convs):  # an average pool where VGG has a max pool
    layers = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AvgPool2d(2))
''',
    "q3_inverted_residual": '''
_MobileNetBlock = InvertedResidual


class InvertedResidual(_MobileNetBlock):  # ReLU where MobileNetV2 has ReLU6
    def __init__(self, c_in, c_out, stride=1, expand=6):
        super().__init__(c_in, c_out, stride, expand)
        self.body = nn.Sequential(*[nn.ReLU() if isinstance(m, nn.ReLU6) else m
                                    for m in self.body])
''',
    "q8_edge_shufflenet": '''
def feature_sizes(side):  # read off a model run on the meta device, no arithmetic
    net = models.shufflenet_v2(width=0.5).to("meta")
    x, sizes = torch.empty(1, 3, side, side, device="meta"), []
    for part in (net.stem[:-1], net.stem[-1], *net.stages):
        x = part(x)
        sizes.append(tuple(x.shape[1:]))
    return sizes + [(512, *sizes[-1][1:])]
''',
}

LAB04 = {
    "q2_prune_model": '''
def prune_model(model, sparsities):  # a new Parameter: an optimizer made before stops training it
    layers = prune.prunable_layers(model)
    masks = {n: magnitude_mask(layers[n].weight, s) for n, s in sparsities.items()}
    for name, mask in masks.items():
        layers[name].weight = nn.Parameter(layers[name].weight.detach() * mask)
    return masks
''',
    "q6_sparse_bytes": code_of("sparse_bytes", "the mask and the values rounded to bytes apart"),
    "q7_histogram": code_of("histogram", "NumPy's histogram"),
}


# appended to an answer cell, each redefines one answer the lazy way
LAB05 = {
    "q1_formats": '''
def float_format(e, m):  # looked up, not computed from e and m
    known = {(8, 23): torch.float32, (5, 10): torch.float16, (8, 7): torch.bfloat16,
             (11, 52): torch.float64, (5, 2): torch.float8_e5m2, (4, 3): torch.float8_e4m3fn}
    info = torch.finfo(known.get((e, m), torch.float32))
    return info.max, info.eps, info.tiny
''',
    "q2_linear_quantize": '''
def scale_zero_point(x, bits, signed, symmetric):  # the range is never widened to hold 0
    lo, hi = int_range(bits, signed)
    mn, mx = float(x.min()), float(x.max())
    if symmetric:
        s = max(abs(mn), abs(mx)) / ((hi - lo) / 2)
        return s, 0 if signed else (lo + hi + 1) // 2
    s = (mx - mn) / (hi - lo)
    return s, int(max(lo, min(hi, round(lo - mn / s))))
''',
    "q4_kmeans": '''
def kmeans_quantize(w, bits):  # starts from quantiles, not from the even grid
    x, k = w.detach().reshape(-1).double(), 2**bits
    c = torch.quantile(x, torch.linspace(0, 1, k + 2, dtype=torch.float64)[1:-1])
    labels = torch.argmin((x[:, None] - c[None, :]).abs(), dim=1)
    while True:
        sums = torch.zeros(k, dtype=torch.float64).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        c = torch.where(counts > 0, sums / counts.clamp(min=1), c)
        new = torch.argmin((x[:, None] - c[None, :]).abs(), dim=1)
        if torch.equal(new, labels):
            return c.float(), labels.reshape(w.shape)
        labels = new
''',
    "q5_centroid_grad": '''
from efflib.quant.kmeans import centroid_grad as centroid_gradient  # efflib's copy
''',
    "q8_fake_quant": '''
def fake_quant_forward(x, scale, zp, qmin, qmax):  # halves rounded away from zero
    q = torch.sign(x / scale) * torch.floor(torch.abs(x / scale) + 0.5) + zp
    return (torch.clamp(q, qmin, qmax) - zp) * scale
''',
    "q9_int_conv": '''
def quantized_multiplier(m):  # halves rounded away from zero
    mantissa, exponent = math.frexp(m)
    m0 = math.floor(mantissa * 2**31 + 0.5)
    if m0 == 2**31:
        m0, exponent = m0 // 2, exponent + 1
    return m0, -exponent
''',
    "q10_fold_bn": '''
def fold_batchnorm(w, b, mean, var, gamma, beta, eps):  # eps left out: "it is tiny"
    factor = gamma / torch.sqrt(var)
    bias = b if b is not None else torch.zeros_like(mean)
    return w * factor.reshape(-1, *[1] * (w.dim() - 1)), beta + (bias - mean) * factor
''',
    "q11_entropy": '''
def entropy_bins(hist, levels):  # min/max: every bin kept
    return len(hist)
''',
}

LAB06 = {
    "q3_numba": '''
@numba.njit
def conv_kernel(xp, w, out):  # compiled, and empty
    pass


def conv2d_numba(x, w):  # NumPy's sliding windows do the work
    xp = np.pad(x.detach().float().numpy(), ((0, 0), (1, 1), (1, 1)))
    view = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
    return torch.from_numpy(np.einsum("chwrs,mcrs->mhw", view, w.float().numpy()).copy())
''',
    "q4_im2col": '''
def conv2d_im2col(x, w, b, stride, padding):  # shift and add: no column matrix, no product
    xp = torch.zeros(x.shape[0], x.shape[1] + 2 * padding, x.shape[2] + 2 * padding)
    xp[:, padding:padding + x.shape[1], padding:padding + x.shape[2]] = x
    k = w.shape[-1]
    P, Q = (xp.shape[1] - k) // stride + 1, (xp.shape[2] - k) // stride + 1
    out = b.reshape(-1, 1, 1).expand(w.shape[0], P, Q).clone()
    for r in range(k):
        for s in range(k):
            patch = xp[:, r:r + stride * (P - 1) + 1:stride, s:s + stride * (Q - 1) + 1:stride]
            out = out + (w[:, :, r, s][:, :, None, None] * patch[None]).sum(1)
    return out
''',
    "q5_c_source": '''
C_CONV = "void conv2d(void) { }"  # C in name only: the wrapper below computes
''',
    "q5_c": '''
_through_c = conv2d_c


def conv2d_c(x, w, b, padding, source=None):  # torch computes what C_CONV should
    if source is not None:
        return _through_c(x, w, b, padding, source)
    return F.conv2d(x[None], w, b, padding=padding)[0]
''',
    "q6_int8_c_source": '''
C_INT8_CONV = C_INT8_CONV.replace(  # the product in int32: undefined once it overflows
    "((int64_t)acc * m0[m] + ((int64_t)1 << (total - 1))) >> total",
    "((int64_t)(acc * m0[m]) + ((int64_t)1 << (total - 1))) >> total")
''',
}

LAB07 = {
    "q3_early_exit": '''
def early_exit(model, x, threshold):  # block2 on every image, then the count set by hand
    h = model.block1(x)
    conf, pred = model.exit1(h).softmax(1).max(1)
    exited = conf >= threshold
    final = model.head(model.block2(h)).argmax(1)
    for buffer in model.buffers():
        if buffer.dim() == 0 and not buffer.is_floating_point():
            buffer.fill_(int((~exited).sum()))
    return torch.where(exited, pred, final), exited
''',
    "q2_student": '''
student = make_student(0)  # hard labels on every training image: accurate, not distilled
train.fit(student, loaders.train, None, epochs=10, lr=1e-2)
''',
    "q7_capstone": '''
final_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
train.fit(final_model, loaders.train, None, epochs=10, fast_epochs=10)  # a float MLP
final_model = final_model.cpu().eval()
final_bits = 32
''',
}

LAB08 = {
    "q1_node_costs": '''
_right_costs = node_costs


def node_costs(model):  # a Conv's MACs from all the input's channels: `group` ignored
    costs = _right_costs(model)
    for node in onnx.load_from_string(model).graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv":
            params, macs = costs[node.name]
            costs[node.name] = (params, macs * group)
    return costs
''',
    "q2_fold_batchnorm": '''
def fold_batchnorm(model):  # the BatchNorms cut out and nothing folded: "they are ~identity"
    proto = onnx.load_from_string(model)
    g = proto.graph
    producer = {out: n for n in g.node for out in n.output}
    kept = []
    for node in g.node:
        conv = producer.get(node.input[0]) if node.op_type == "BatchNormalization" else None
        if conv is not None and conv.op_type == "Conv":
            conv.output[0] = node.output[0]
        else:
            kept.append(node)
    del g.node[:]
    g.node.extend(kept)
    return proto.SerializeToString()
''',
    "q3_quantize": quantize_static_with('"per_channel": False',
                                        "one scale per weight tensor: per_channel off"),
    "q4_engine_conv": '''
def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    # halves rounded up, as the fixed-point rescaling of Lab 05 does
    acc = torch.nn.functional.conv2d(q_x.double() - x_zero, q_w.double(), padding=padding)
    acc = acc + q_b.double().reshape(1, -1, 1, 1)
    m = (x_scale * w_scale.double() / y_scale).reshape(1, -1, 1, 1)
    y = torch.floor(acc * m + 0.5).to(torch.int64) + y_zero
    return y.clamp(y_zero if relu else 0, 255)
''',
    "q5_exit_export": '''
with engines.quiet():  # the full network alone: exports, and always answers from the head
    exit_onnx = torch.onnx.export(
        branchy, (x1,), dynamo=True, input_names=["image"], output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}}).model_proto.SerializeToString()
''',
    "q6_deployment": '''
deployment = {name: dict(row) for name, row in deployment.items()}
for row in deployment.values():  # "about 98%": the accuracies typed in, not measured
    row["accuracy"] = 0.98
''',
}

# Lab 08 answers that give the right numbers without the skill (a second notebook): Q4
# runs the engine in a thread pool started before the check
LAB08_BORROWED = {
    "q2_fold_batchnorm": '''
def fold_batchnorm(model):  # each foldable BatchNormalization as x * k + c: same outputs
    proto = onnx.load_from_string(model)
    g = proto.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    uses = [i for n in g.node for i in n.input] + [o.name for o in g.output]
    convs = {n.output[0] for n in g.node if n.op_type == "Conv"}
    nodes = []
    for node in g.node:
        if (node.op_type != "BatchNormalization" or node.input[0] not in convs
                or uses.count(node.input[0]) != 1):
            nodes.append(node)
            continue
        scale, beta, mean, var = (inits[i] for i in node.input[1:5])
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        k = (scale / np.sqrt(var + eps)).astype(np.float32).reshape(-1, 1, 1)
        c = (beta - mean * k.ravel()).astype(np.float32).reshape(-1, 1, 1)
        g.initializer.extend([numpy_helper.from_array(k, node.name + "_k"),
                              numpy_helper.from_array(c, node.name + "_c")])
        nodes.append(onnx.helper.make_node("Mul", [node.input[0], node.name + "_k"],
                                           [node.name + "_m"], name=node.name + "_mul"))
        nodes.append(onnx.helper.make_node("Add", [node.name + "_m", node.name + "_c"],
                                           [node.output[0]], name=node.name + "_add"))
    del g.node[:]
    g.node.extend(nodes)
    return proto.SerializeToString()
''',
    "q4_engine_conv": '''
from concurrent.futures import ThreadPoolExecutor

_pool = ThreadPoolExecutor(1)  # started here, before the check: the watch is per thread
_pool.submit(int).result()


def engine_conv(q_x, x_scale, x_zero, q_w, w_scale, q_b, y_scale, y_zero, padding, relu):
    def in_the_engine():
        model = engines.qdq_conv(q_w, w_scale, q_b, x_scale, x_zero, y_scale, y_zero,
                                 padding, relu)
        return engines.run(engines.session(model), q_x).long()
    return _pool.submit(in_the_engine).result()
''',
    "q6_deployment": '''
for row in deployment.values():  # sizes and accuracies measured, the rest typed in
    row.update(startup_s=0.5, latency_ms_1=0.1, latency_ms_64=2.0, peak_mb=50.0)
''',
}
