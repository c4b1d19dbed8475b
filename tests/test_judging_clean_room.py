"""The clean room's side of judging: which statements it runs, what its functions miss, and
its own requests (autograde/judging/clean_room.py)."""

import torch

from autograde.judging import clean_room, definitions
from autograde.judging.wire import decode, encode


def kept(source: str) -> list[str]:
    return definitions.definitions([source])


def test_definitions_keep_imports_defs_classes_and_constants():
    source = '''
import torch
from math import sqrt
C_SOURCE = r"""int f(void) { return 1; }"""
BITS, SIGNED = 8, True
relu = lambda x: x.clamp(min=0)
@numba.njit(cache=False)
def kernel(a):
    return a
def f(x, k: int = 2) -> int:
    return x
class Block(torch.nn.Module):
    """A block."""
    width = 4
    def forward(self, x):
        return x
try:
    import numba
except ImportError:
    numba = None
'''
    got = kept(source)
    assert [s.split("\n")[0] for s in got] == [
        "import torch", "from math import sqrt", 'C_SOURCE = \'int f(void) { return 1; }\'',
        "BITS, SIGNED = (8, True)", "relu = lambda x: x.clamp(min=0)", "@numba.njit(cache=False)",
        "def f(x, k: int=2) -> int:", "class Block(torch.nn.Module):", "try:"]


def test_definitions_leave_out_what_runs_code():
    source = '''
model = train(model, epochs=10)
print(model)
efflib.graded._blocked = set()
vars(ks)["from_spec"] = None
setattr(ks, "from_spec", None)
for i in range(3):
    def g(): pass
def f(x, _=setattr(ks, "from_spec", None)):
    return x
def h(x: setattr(ks, "x", 1)):
    return x
@register(ks)
def k(x):
    return x
class Sneaky:
    ks.from_spec = None
class Based(make_base()):
    pass
_real = next(c.cell_contents for c in efflib.quant.linear.quantize.__closure__)
if setattr(ks, "x", 1) is None:
    import torch
'''
    assert kept(source) == []


def test_magics_and_shell_lines_do_not_hide_definitions():
    got = kept("%matplotlib inline\n!ls\ndef f(x):\n    return x\n")
    assert got == ["def f(x):\n    return x"]


def test_a_cell_that_does_not_parse_adds_nothing_and_others_still_count():
    assert definitions.definitions(["def f(:\n", "X = 1"]) == ["X = 1"]


def test_define_runs_each_statement_and_names_those_that_failed():
    ns: dict = {}
    reply = clean_room.answer({"op": "define", "statements": [
        "import efflib_that_is_not_there", "X = 1", "Y = 1 / 0"]}, ns)
    failed = decode(reply["value"])
    assert ns["X"] == 1 and "Y" not in ns
    assert len(failed) == 2
    assert failed[0].startswith("import efflib_that_is_not_there: ModuleNotFoundError")
    assert "ZeroDivisionError" in failed[1]


def test_missing_names_what_defined_functions_read_and_nothing_else():
    ns: dict = {}
    clean_room.answer({"op": "define", "statements": [
        "import torch",
        "def f(x):\n    return torch.relu(x) * SCALE + len(TABLE)",
        "class K:\n    def g(self):\n        return OFFSET",
        "def outer():\n    def inner():\n        return NESTED\n    return inner"]}, ns)
    missing = decode(clean_room.answer({"op": "missing"}, ns)["value"])
    assert {"SCALE", "TABLE", "OFFSET", "NESTED"} <= set(missing)
    assert not {"torch", "len", "f", "K"} & set(missing)


def test_set_installs_plain_data_only():
    ns: dict = {}
    values = {"SCALE": torch.tensor([2.0]), "N": 3}
    assert clean_room.answer({"op": "set", "values": encode(values)}, ns) == {"value": None}
    assert torch.equal(ns["SCALE"], torch.tensor([2.0])) and ns["N"] == 3
    forged = {"__t": "dict", "v": [["f", {"__t": "ref", "id": 1, "type": "function",
                                           "callable": True}]]}
    assert "error" in clean_room.answer({"op": "set", "values": forged}, ns)
    assert "f" not in ns


def test_other_requests_are_the_kernel_sides():
    ns = {"X": 5}
    assert decode(clean_room.answer({"op": "get", "name": "X"}, ns)["value"]) == 5
