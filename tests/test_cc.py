"""efflib.cc: C compiled from a string with the registry's compiler, cached, errors readable."""

import ctypes
import subprocess
from pathlib import Path

import pytest
import torch

from efflib import cc

ADD = """
void add(const float *a, const float *b, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = a[i] + b[i];
}
"""


@pytest.fixture(autouse=True, scope="module")
def own_cache(tmp_path_factory):
    """One cache for these tests (zig builds its C runtime once, in a few seconds)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EFFLAB_CC_CACHE", str(tmp_path_factory.mktemp("cc")))
        yield


def test_the_compiler_is_the_one_from_the_package_registry():
    assert cc.compiler()[1:] == ["-m", "ziglang", "cc"]


def test_a_shared_library_is_called_through_ctypes_and_cached():
    lib = cc.load(ADD, name="add")
    a, b = torch.randn(100), torch.randn(100)
    out = torch.empty(100)
    lib.add(cc.pointer(a), cc.pointer(b), cc.pointer(out), ctypes.c_int(100))
    assert torch.equal(out, a + b)
    path = cc.build(ADD, name="add")
    assert path.exists() and cc.build(ADD, name="add") == path  # the cache answers
    assert cc.build(ADD + "\n", name="add") != path             # a new source, a new build


def test_an_executable_runs_as_its_own_process():
    exe = cc.build('#include <stdio.h>\nint main(void) { printf("%d\\n", 6 * 7); return 0; }',
                   kind="exe", name="hello")
    assert subprocess.run([str(exe)], capture_output=True, text=True).stdout == "42\n"


def test_compiler_errors_come_back_with_their_line_numbers():
    with pytest.raises(cc.CompileError) as err:
        cc.build("int f(void) {\n  return undefined_name;\n}\n", name="broken")
    assert "broken.c:2" in str(err.value) and "undefined_name" in str(err.value)
    # as a notebook writes it, r\"\"\" then a newline: line 1 is the first line of C
    source = "\nint f(void) {\n  return undefined_name + other_name;\n}\n"
    with pytest.raises(cc.CompileError) as err:
        cc.build(source, name="conv")
    first = str(err.value).splitlines()[0]
    assert first.startswith("the C compiler refused conv.c: conv.c:2:")
    assert "undefined_name" in first  # the first error in the first line, for Validate
    shown = err.value._render_traceback_()  # what the notebook shows: no Python stack
    assert shown[0].startswith("CompileError: the C compiler refused conv.c: conv.c:2:")
    assert len(shown) <= 10 and "Traceback" not in "".join(shown)
    assert "return undefined_name" in "\n".join(shown)  # the source line and its caret
    assert "1 more error after this one" in shown[-1]
    with pytest.raises(ValueError, match="kind"):
        cc.build(ADD, kind="dll")
    with pytest.raises(ValueError, match="non-empty"):
        cc.build("   ")


FMA = """
void fma_like(const float *a, const float *b, const float *c, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = a[i] * b[i] + c[i];
}"""


def test_no_fused_multiply_add_changes_the_rounding():
    """a*b + c rounded twice, as the source says: the same as torch in float32; a build
    allowed to fuse them (-ffp-contract=fast) differs, so the flag is what keeps it exact."""
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(100_000, generator=g) for _ in range(3))

    def run(lib):
        out = torch.empty_like(a)
        lib.fma_like(*(cc.pointer(t) for t in (a, b, c, out)), ctypes.c_int(a.numel()))
        return out
    assert torch.equal(run(cc.load(FMA, name="fma")), a * b + c)
    cpu = Path("/proc/cpuinfo")
    if cpu.exists() and " fma " in cpu.read_text():  # only a CPU with FMA can fuse them
        fused = run(cc.load(FMA, flags=("-ffp-contract=fast", "-march=native"), name="fused"))
        assert not torch.equal(fused, a * b + c)
