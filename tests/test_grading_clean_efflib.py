"""efflib as the clean room sees it (autograde/grading/clean_efflib.py): each lab's
references raise and their source is gone; the rest of efflib works."""

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
import time

import pytest

from autograde.course import build
from autograde.grading import clean_efflib
from autograde.judging.clean_room import Withheld

PROBE = r'''
import importlib, inspect, json, pkgutil, sys
import efflib
from efflib.graded import GradedAnswerError
for m in pkgutil.walk_packages(efflib.__path__, "efflib."):
    importlib.import_module(m.name)
topics, modules = set(sys.argv[1].split(",")) - {""}, set(sys.argv[2].split(",")) - {""}
raised, ran = [], []
for name, mod in sorted(sys.modules.items()):
    if not name.startswith("efflib"):
        continue
    for key, fn in sorted(vars(mod).items()):
        if getattr(fn, "__module__", None) != name or not callable(fn):
            continue
        if getattr(fn, "__efflib_topic__", None) in topics or (
                name in modules and inspect.isfunction(fn)):
            inner = getattr(fn, "py_func", fn)
            if getattr(fn, "__efflib_topic__", None) and inner.__closure__:
                inner = inner.__closure__[0].cell_contents
            n = sum(p.default is p.empty and p.kind <= p.POSITIONAL_OR_KEYWORD
                    for p in inspect.signature(inner).parameters.values())
            try:
                fn(*[None] * n)
                ran.append(f"{name}.{key}")
            except GradedAnswerError as e:
                raised.append(f"{name}.{key}")
                assert "write it yourself" in str(e), e
            except Exception as e:
                ran.append(f"{name}.{key}: {type(e).__name__}")
print(json.dumps({"raised": raised, "ran": ran, "file": efflib.__file__}))
'''


def probe(folder, withheld: Withheld) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, ",".join(withheld.topics),
                          ",".join(withheld.modules)], cwd=folder.parent, check=True,
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(folder.parent), "PATH": os.environ["PATH"]})
    return json.loads(out.stdout)


@pytest.mark.parametrize("lab", build.lab_names())
def test_each_labs_references_raise_and_the_copy_imports(lab, tmp_path):
    withheld = importlib.import_module(f"autograde.checks.{lab}").WITHHELD
    folder = clean_efflib.build(withheld, str(tmp_path))
    got = probe(folder, withheld)
    assert got["file"].startswith(str(folder))  # the copy, not the repository's efflib
    # a module refused whole keeps the helpers its import runs (tables built by them)
    kept = {f"{m}.{name}" for m in withheld.modules for name in clean_efflib._called_at_import(
        ast.parse(inspect.getsource(importlib.import_module(m))))}
    assert got["raised"], got
    assert {r.split(":")[0] for r in got["ran"]} <= kept, got["ran"]


def test_a_withheld_body_is_gone_and_the_rest_is_efflibs_own(tmp_path):
    withheld = Withheld(topics=("fake_quantization", "conv_loops"))
    folder = clean_efflib.build(withheld, str(tmp_path))
    linear = (folder / "quant" / "linear.py").read_text()
    assert "torch.round(wide * (1.0 / s))" not in linear  # _FakeQuantize.forward's body
    assert "def forward(ctx, x, scale, zero_point, qmin, qmax, axis):" in linear
    loops = (folder / "loops.py").read_text()
    assert "out[m, p, q] += w[m, c, r, s] * x[c, h, v]" not in loops  # the numba twin
    code = ("import torch; from efflib.prune import magnitude_mask; "
            "print(magnitude_mask(torch.arange(-5., 5.), 0.5).int().tolist())")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": str(folder.parent),
                                         "PATH": os.environ["PATH"]}, cwd=folder.parent)
    assert out.stdout.strip() == "[1, 1, 1, 0, 0, 0, 0, 0, 1, 1]"  # efflib's own, working


def test_the_copy_is_read_only_and_built_once(tmp_path):
    withheld = Withheld(topics=("huffman",))
    folder = clean_efflib.build(withheld, str(tmp_path))
    assert clean_efflib.build(withheld, str(tmp_path)) == folder
    assert len(list(tmp_path.iterdir())) == 1
    for path in folder.rglob("*"):
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o444), path


def test_copies_unused_for_a_week_are_removed_when_another_is_built(tmp_path):
    stale, recent = tmp_path / "efflab_clean_0000", tmp_path / "efflab_clean_1111"
    for old in (stale, recent):
        (old / "efflib").mkdir(parents=True)
        (old / "efflib" / "x.py").write_text("")
        (old / "efflib" / "x.py").chmod(0o444)
    week = clean_efflib.UNUSED_FOR
    os.utime(stale, (time.time() - week - 60,) * 2)
    os.utime(recent, (time.time() - week + 3600,) * 2)
    folder = clean_efflib.build(Withheld(topics=("kmeans",)), str(tmp_path))
    assert not stale.exists() and recent.exists() and folder.is_dir()
    os.utime(folder.parent, (time.time() - week - 60,) * 2)
    assert clean_efflib.build(Withheld(topics=("kmeans",)), str(tmp_path)) == folder
    assert time.time() - folder.parent.stat().st_mtime < 60  # used again: kept


def test_a_module_refused_whole_keeps_what_its_import_runs():
    source = '''
def _rule(name):
    return lambda a: name
def _mm(a, b):
    return a @ b
RULES = {"relu": _rule("relu"), "mm": lambda a, o: _mm(a, o)}
def count(x):
    return len(x)
'''
    out = clean_efflib.stripped(source, "efflib.macs", Withheld(modules=("efflib.macs",)))
    namespace: dict = {}
    exec(compile(out.replace("from efflib.graded import GradedAnswerError as",
                             "_EfflabWithheld = RuntimeError #"), "<s>", "exec"), namespace)
    assert namespace["RULES"]["relu"](None) == "relu"  # run at import: kept
    for name, args in (("_mm", (1, 2)), ("count", ([1],))):
        with pytest.raises(RuntimeError, match="write it yourself"):
            namespace[name](*args)
