"""A block's structure from its exported graph: which layers, in which order, joined how.

Shapes, parameter counts and MACs do not change when a ReLU6 becomes a ReLU, when the
last ReLU moves before the residual add, or when a max pool becomes an average pool;
the structure does. Each operation of a kind that matters (convolution, batch norm,
each activation, add, concatenation, each pooling, linear) is a node; everything else
(views, copies, reshapes) passes its one input on. A node is labelled by its kind and
the labels of its inputs, unordered, so two blocks that compute their branches in
another order have the same structure (Merkle's hashing of a tree, applied to a graph).
"""

from autograde.judging.graphs import GraphModel, _Ref

KINDS = {  # ATen operation (without "aten." and overload, in-place "_" dropped) -> kind
    "conv2d": "conv", "convolution": "conv", "_convolution": "conv", "conv1d": "conv",
    "batch_norm": "batch norm", "_native_batch_norm_legit_no_training": "batch norm",
    "_native_batch_norm_legit": "batch norm", "native_batch_norm": "batch norm",
    "relu": "ReLU", "hardtanh": "ReLU6", "relu6": "ReLU6", "sigmoid": "sigmoid",
    "hardswish": "hard swish", "gelu": "GELU", "silu": "SiLU",
    "add": "add", "cat": "concatenation",
    "max_pool2d": "max pool", "max_pool2d_with_indices": "max pool",
    "avg_pool2d": "average pool", "adaptive_avg_pool2d": "average pool", "mean": "average pool",
    "linear": "linear", "addmm": "linear",
}
Label = tuple  # (kind, (input labels, sorted))
INPUT: Label = ("the input", ())


def _kind(op: str) -> str | None:
    base = op.removeprefix("aten.").split(".")[0]
    return KINDS.get(base.rstrip("_") if base.endswith("_") and base != "_" else base)


def structure(graph: GraphModel) -> Label:
    """The label of the graph's output: its whole structure, as nested kinds."""
    params = {s[1] for s in graph.steps if s[0] == "input" and s[2] is not None}
    labels: dict[str, Label] = {s[1]: INPUT for s in graph.steps
                                if s[0] == "input" and s[2] is None}
    for step in graph.steps:
        if step[0] == "call":
            _, name, _, args, kwargs, op = step
            refs = [a for a in _refs((args, kwargs)) if a not in params and a in labels]
            kind = _kind(op)
            if kind is None and len(set(refs)) == 1:
                labels[name] = labels[refs[0]]  # a view, copy or reshape: the same value
            elif kind is not None or refs:
                kind = kind or op.removeprefix("aten.").split(".")[0]
                labels[name] = (kind, tuple(sorted(labels[r] for r in refs)))
        elif step[0] == "output":
            outs = [labels[r] for r in _refs(step[1]) if r in labels]
            return outs[0] if len(outs) == 1 else ("outputs", tuple(outs))
    return ("nothing", ())


def _refs(value) -> list[str]:
    if isinstance(value, _Ref):
        return [str(value)]
    if isinstance(value, list | tuple):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def first_difference(got: Label, want: Label) -> str | None:
    """Where `got` first departs from `want`, read from the output back, in words that name
    the student's side and the kind expected there; None when they are the same."""
    if got == want:
        return None
    if got[0] != want[0]:
        return f"{_named(got)} where the specification has {_a(want[0])}"
    mine, theirs = list(got[1]), list(want[1])
    if len(mine) != len(theirs):
        return (f"{_named(got)} that takes {len(mine)} input{'s' * (len(mine) != 1)} where "
                f"the specification's takes {len(theirs)}")
    extra = [m for m in mine if m not in theirs or mine.count(m) > theirs.count(m)]
    missing = [t for t in theirs if t not in mine or theirs.count(t) > mine.count(t)]
    if len(extra) == 1 and len(missing) == 1:
        return first_difference(extra[0], missing[0])
    return f"the inputs of {_named(got)} differ from the specification's"


def _named(label: Label) -> str:
    """'a ReLU (after batch norm, conv)': the kind and the chain that feeds it."""
    chain, node = [], label
    while len(node[1]) == 1 and node[1][0] != INPUT and len(chain) < 3:
        node = node[1][0]
        chain.append(node[0])
    return _a(label[0]) + (f" (after {', '.join(chain)})" if chain else "")


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiouAEIOU" else "a ") + kind
