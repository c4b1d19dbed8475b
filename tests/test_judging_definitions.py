"""What the clean room runs and binds, and Validate's preview of what it would lack
(autograde/judging/definitions.py)."""

import builtins
import types

from autograde.judging import definitions


def test_bound_names_what_the_kept_statements_bind():
    cells = ["import numpy as np\nimport torch.nn\nfrom math import sqrt as root\n"
             "A, (B, C) = 1, (2, 3)\ndef f(x):\n    return x\nclass K:\n    pass\n"
             "try:\n    import numba\nexcept ImportError:\n    numba = None\n"
             "g = make_g()\nmodel.attr = 3"]
    assert definitions.bound(definitions.definitions(cells)) == {
        "np", "torch", "root", "A", "B", "C", "f", "K", "numba"}
    inside = ["try:\n    def g(x):\n        local = x\n        return local\n"
              "except ImportError:\n    pass"]
    assert definitions.bound(definitions.definitions(inside)) == {"g"}  # not `local`


def test_a_test_reads_what_it_does_not_bind_itself():
    source = ('"""Q1."""\nfrom checks import check_f\ncheck_f(f)\nx = data + 1\n'
              "check_f(g, hidden=True)\n%time check_f(h)")
    assert definitions.read_names(source) == {"f", "data", "g"}  # a magic's line: the kernel's
    assert definitions.read_names("def broken(:") == set()


def _preview(monkeypatch, capsys, namespace: dict, names: list, defined: list) -> list:
    monkeypatch.setattr(builtins, "get_ipython", lambda: types.SimpleNamespace(
        user_ns=namespace), raising=False)
    definitions.not_defined(names, defined, "NONCE")
    return definitions.read_preview(capsys.readouterr().out, "NONCE")


def test_the_preview_names_functions_bound_otherwise_and_what_theirs_read(monkeypatch,
                                                                           capsys):
    namespace: dict = {}
    exec("def helper(x):\n    return x\n"  # noqa: S102 - a notebook's cell
         "def answer(x):\n    return made(x) + TABLE\n"
         "def fine(x):\n    return helper(x)\n", namespace)
    namespace["made"] = namespace["helper"]  # bound by a call in the notebook
    namespace["TABLE"] = 3  # data: copied in
    namespace["wrapped"] = namespace["fine"]
    got = _preview(monkeypatch, capsys, namespace, ["answer", "fine", "wrapped", "absent"],
                   ["helper", "answer", "fine", "TABLE"])
    assert got == ["wrapped", "made"]
    assert _preview(monkeypatch, capsys, namespace, ["fine"], ["helper", "fine"]) == []


def test_a_preview_printed_wrongly_reads_as_nothing():
    assert definitions.read_preview("NONCE [\"f\"]\nNONCE []", "NONCE") == []
    assert definitions.read_preview("NONCE {not json", "NONCE") == []
    assert definitions.read_preview("NONCE {\"a\": 1}", "NONCE") == []
    assert definitions.read_preview("NONCE [\"f\", 3]", "NONCE") == ["f"]
