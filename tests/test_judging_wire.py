"""autograde.judging.wire and .layers: plain data and standard layer trees, both ways."""

import json
import math

import pytest
import torch

from autograde.judging import layers, wire
from autograde.judging.values import JudgeError


class Liar(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class Sneaky(torch.Tensor):
    pass


class Doubled(torch.nn.Module):
    """A module of no library: it travels only once registered."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        return 2 * self.lin(x)


@pytest.fixture
def registry(monkeypatch):
    """layers.TRUSTED as a copy, so that what a test registers goes with it."""
    monkeypatch.setattr(layers, "TRUSTED", dict(layers.TRUSTED))
    return layers.TRUSTED


def roundtrip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value))))


def test_plain_values_survive_and_lose_their_overrides():
    value = {"n": Liar(3), "x": 2.5, "ok": True, "s": "hi", "none": None,
             "shape": torch.Size([2, 3]), "nested": [(1, 2), [3.0, float("inf")]],
             "dtype": torch.int8}
    got = roundtrip(value)
    assert type(got["n"]) is int and got["n"] == 3 and got["n"] != 4
    assert got["shape"] == (2, 3) and type(got["shape"]) is tuple
    assert got["nested"] == [(1, 2), [3.0, math.inf]] and got["ok"] is True
    assert got["dtype"] is torch.int8 and got["none"] is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.bool,
                                   torch.uint8, torch.float16])
def test_tensors_travel_exactly(dtype):
    t = (torch.randn(3, 4, 5) * 10).to(dtype)
    got = roundtrip(t)
    assert got.dtype == dtype and torch.equal(got, t)
    assert type(roundtrip(t.as_subclass(Sneaky))) is torch.Tensor
    assert roundtrip(torch.empty(0, 3)).shape == (0, 3)


class Bytes(bytes):
    def __eq__(self, other):
        return True


def test_bytes_travel_exactly_as_plain_bytes():
    data = bytes(range(256)) * 3
    got = roundtrip(data)
    assert type(got) is bytes and got == data
    assert roundtrip(bytearray(b"onnx")) == b"onnx" and roundtrip(b"") == b""
    sneaky = roundtrip(Bytes(b"abc"))
    assert type(sneaky) is bytes and sneaky != b"xyz"
    with pytest.raises(JudgeError, match="not base64"):
        wire.decode({"__t": "bytes", "v": "not base64!"})


def test_objects_become_refs_only_where_allowed():
    refs = {}
    enc = wire.encode([1, print], refs)
    assert enc[1]["__t"] == "ref" and refs[enc[1]["id"]] is print
    with pytest.raises(TypeError, match="not plain data"):
        wire.encode(object())
    with pytest.raises(JudgeError, match="not a valid value"):
        wire.decode(enc)  # a ref needs a session to become a Remote


def test_standard_layers_travel_as_data_and_are_rebuilt():
    import torch.nn as nn

    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                      nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
                      nn.Linear(8 * 4 * 4, 5)).eval()
    with torch.no_grad():
        m[1].running_mean.normal_()
        m[0].weight = nn.Parameter(m[0].weight[:6])  # resized by hand: kept as it is
        m[1] = nn.BatchNorm2d(6).eval()
    m[5] = nn.Linear(6 * 4 * 4, 5)
    got = roundtrip(m)
    x = torch.randn(2, 3, 8, 8)
    assert type(got) is nn.Sequential and got is not m and not got.training
    assert torch.equal(got(x), m(x)) and got[0].bias is None

    class MyConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 0 + 1
    assert not layers.is_layer_tree(nn.Sequential(MyConv(1, 1, 1)))
    with pytest.raises(TypeError, match="not plain data"):
        wire.encode(nn.Sequential(MyConv(1, 1, 1)))


def _weightless(m):
    """`m`'s description with its tensors left out, as a forged reply would send it."""
    enc = wire.encode(m)

    def strip(node):
        if isinstance(node, dict) and node.get("__t") == "module":
            node["params"] = node["buffers"] = {"__t": "dict", "v": []}
            for _, child in node["children"]:
                strip(child)
        return node
    for pair in enc["children"]:
        strip(pair[1])
    return strip(enc)


def test_a_few_bytes_cannot_make_the_grader_build_gigabytes():
    """Layers are made on the meta device and must bring every tensor they have: a tiny
    description of huge layers, or many weightless ones, is refused without allocating."""
    import time

    import torch.nn as nn

    huge = {"__t": "module", "cls": "Linear", "training": False,
            "config": wire.encode({"in_features": 10**6, "out_features": 10**6, "bias": True}),
            "params": {"__t": "dict", "v": []}, "buffers": {"__t": "dict", "v": []},
            "children": []}
    with pytest.raises(JudgeError, match="Linear.weight is missing"):
        wire.decode(huge)
    many = _weightless(nn.Sequential(*[nn.Conv2d(512, 512, 3) for _ in range(200)]))
    start = time.perf_counter()
    with pytest.raises(JudgeError, match="missing"):
        wire.decode(many)
    assert time.perf_counter() - start < 5  # refused, not built (200 real convs: 1.9 GB)
    padded = wire.encode(nn.Sequential(nn.Conv2d(1, 1, 1)))
    padded["children"][0][1]["config"] = wire.encode(
        {**{k: getattr(nn.Conv2d(1, 1, 1), k) for k in layers.LAYERS["Conv2d"]},
         "padding": (10**6, 10**6), "bias": True})
    with pytest.raises(JudgeError, match="out of range"):
        wire.decode(padded)
    flat = wire.encode(nn.Sequential(*[nn.ReLU() for _ in range(wire.MAX_MODULES)]))
    with pytest.raises(JudgeError, match="layers in one answer"):
        wire.decode(flat)


@pytest.mark.parametrize("bad", [
    {"__t": "module", "cls": "Module", "config": {"__t": "dict", "v": []}},
    {"__t": "module", "cls": "ReLU", "config": {"__t": "dict", "v": [["inplace", False],
                                                                     ["hook", "x"]]}},
    {"__t": "tensor", "dtype": "float32", "shape": [2], "data": "AAAA"},  # 3 bytes for 8
    {"__t": "tensor", "dtype": "Tensor", "shape": [], "data": ""},
    {"__t": "pickle", "v": "gASV"},
    {"v": 1},
    {"__t": "dict", "v": [[[1], 2]]},  # unhashable key
])
def test_malformed_answers_are_refused(bad):
    with pytest.raises(JudgeError):
        wire.decode(bad)


def test_a_module_class_travels_once_a_check_registers_it(registry):
    """Issue 30: a check registers the modules it sends (checks.api.trusted_module); judging
    kept a list naming them, which every such lab had to edit."""
    m, x = Doubled(), torch.randn(3, 2)
    with pytest.raises(TypeError, match="not plain data"):
        wire.encode(m)
    assert layers.trusted_module(Doubled) is Doubled
    sent = json.loads(json.dumps(wire.encode(m)))
    got = wire.decode(sent)
    assert type(got) is Doubled and got is not m and torch.equal(got(x), m(x))
    del registry[layers.dotted(Doubled)]
    with pytest.raises(JudgeError, match="not a standard layer"):
        wire.decode(sent)  # the grader rebuilds only what it registered itself
    with pytest.raises(TypeError, match="nn.Module class"):
        layers.trusted_module(len)


def test_the_checks_modules_are_registered_where_they_are_defined():
    import autograde.checks.models as check_models

    for name in ("MixedNet", "OutputScore", "Gate"):
        cls = getattr(check_models, name)
        assert layers.TRUSTED[layers.dotted(cls)] is cls
    assert "efflib.models.digits.DigitCNN" in layers.trusted_names()


def test_a_kernel_learns_the_registered_classes_by_name_and_nothing_else(registry):
    name = layers.dotted(Doubled)
    registry.pop(name, None)
    layers.trust_names(["os.path", "no.such_module.Model", "torch.nn.Module.forward", 7,
                        "builtins.object", name])
    assert registry[name] is Doubled
    assert not [n for n in registry if n.startswith(("os.", "no.", "torch.", "builtins."))]
    before = dict(registry)
    layers.trust_names("efflib.models.digits.DigitCNN")  # not a list: ignored
    layers.trust_names(None)
    assert registry == before
