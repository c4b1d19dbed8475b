"""The integrity probe, in one place: the code it runs in the student's kernel after each
kernel-run test cell, and the grader's side that sends it and reads its verdict.

`code(nonce)` is the cell the grader sends; its one line of output that starts with the
nonce is the verdict, "clean" or what it found. A missing, wrong or doubled answer
counts as tampering, and from then on every kernel-run test cell of the notebook fails
with IntegrityError (`IntegrityProbe`, a mixin of `SandboxedExecute`).
"""

import secrets
import sysconfig
from pathlib import Path

from autograde.grading.output_budget import OutputBudget
from autograde.nbgrader_seam.cells import error_output, side_cell

# Run in the student's kernel after every test cell that is not judged outside it
# (kernel_only checks). It looks for the usual ways of faking a pass: check functions,
# builtins or shell methods replaced by code from the notebook, AST or input
# transformers, custom exception handlers (other than the checks' own), trace hooks,
# swapped modules. Code that reads
# this probe can still hide from it; judged cells (autograde.judging.judge) do not depend on it.
PROBE = r"""
def _efflab_probe(nonce, trusted):
    import builtins, sys, types
    found = []
    def foreign(obj):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return not code.co_filename.startswith(trusted)
        return getattr(obj, "__module__", "") == "__main__"
    ip = get_ipython()
    # methods patched on the objects that run cells and report errors (showtraceback,
    # run_cell, transform_ast, session.send, ...), on them or on their classes
    kernel = getattr(ip, "kernel", None)
    owners = {"shell": ip, "kernel": kernel, "session": getattr(kernel, "session", None),
              "displayhook": ip.displayhook, "display_pub": ip.display_pub}
    for label, owner in owners.items():
        if owner is None:
            continue
        for attr, value in list(vars(owner).items()):
            if callable(value) and not isinstance(value, type) and foreign(value):
                found.append(f"{label}.{attr} replaced")
        for cls in type(owner).__mro__:
            for attr, value in list(vars(cls).items()):
                if isinstance(value, types.FunctionType) and foreign(value):
                    found.append(f"{cls.__name__}.{attr} replaced")
    for hook in ("excepthook", "displayhook"):
        value = getattr(sys, hook)
        if foreign(getattr(value, "__func__", value)):
            found.append(f"sys.{hook} replaced")
    if ip.custom_exceptions:  # only the checks' own brief display of a failed check
        closure = getattr(getattr(ip.CustomTB, "__func__", None), "__closure__", None) or ()
        handlers = []
        for c in closure:
            try:
                if getattr(c.cell_contents, "__name__", "") == "brief_traceback":
                    handlers.append(c.cell_contents)
            except ValueError:  # an empty cell
                pass
        ours = sys.modules.get("autograde.checks.notebook")
        if not (len(handlers) == 1 and ours is not None
                and handlers[0] is getattr(ours, "brief_traceback", None)
                and not foreign(handlers[0])
                and all(getattr(e, "__module__", "") in ("autograde.judging.values",
                                                         "efflib.graded")
                        for e in ip.custom_exceptions)):
            found.append("custom exception handlers installed")
    if ip.ast_transformers:
        found.append("AST transformers installed")
    if ip.input_transformers_post:
        found.append("input transformers installed")
    if sys.gettrace() is not None or sys.getprofile() is not None:
        found.append("a trace or profile hook is set")
    for name, value in list(vars(builtins).items()):
        if isinstance(value, (types.FunctionType, type)) and foreign(value):
            found.append(f"builtin {name} replaced")
    for name, mod in list(sys.modules.items()):
        if not name.startswith(("autograde", "efflib")):
            continue
        if not str(getattr(mod, "__file__", "")).startswith(trusted):
            found.append(f"module {name} replaced")
            continue
        for attr, value in list(vars(mod).items()):
            if callable(value) and foreign(value):
                found.append(f"{name}.{attr} replaced")
    print(nonce, "|".join(found) or "clean")
_efflab_probe(PROBE_ARGS)
del _efflab_probe
"""


def _trusted_prefixes() -> tuple[str, ...]:
    repo = str(Path(__file__).resolve().parents[2])
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (repo, *sorted(paths))


def code(nonce: str) -> str:
    return PROBE.replace("PROBE_ARGS", f"{nonce}, {_trusted_prefixes()!r}")


PROBE_OUTPUT_LIMIT = 100_000  # the probe's verdict gets through a spent output budget


class IntegrityProbe:
    """Mixin of `SandboxedExecute` (before nbgrader's Execute in its bases)."""

    def _check_integrity(self, cell, index) -> None:
        """After a kernel-run test cell: a tampered kernel's pass does not count."""
        if not self._tampered:
            try:
                verdict = self._probe(index)
            except Exception as e:  # noqa: BLE001 - a probe that cannot run is suspicious
                self._tampered = f"the integrity probe failed ({type(e).__name__})"
            else:
                if verdict != "clean":
                    gid = cell.metadata["nbgrader"]["grade_id"]
                    self._tampered = (f"tampering detected after {gid}: "
                                      f"{verdict[:300] or 'no answer from the probe'}")
        if self._tampered:
            cell.outputs = [error_output("IntegrityError", self._tampered)]

    def _probe(self, index: int) -> str:
        """Run the integrity probe in the kernel; its verdict ("clean" or what it found)."""
        nonce = secrets.token_hex(16)
        text = self._side_cell(code(repr(nonce)), index)
        lines = [ln for ln in text.splitlines() if ln.startswith(nonce)]
        if len(lines) > 1:  # a hook that read the nonce answered too: forged
            return "more than one answer to the probe"
        return lines[0][len(nonce):].strip() if lines else ""

    def _side_cell(self, source: str, index: int) -> str:
        """Run `source` in the kernel as a cell of the grader's at `index`; what it printed
        (it gets through a spent output budget)."""
        self._probe_budget = OutputBudget(PROBE_OUTPUT_LIMIT)
        try:
            return side_cell(super().preprocess_cell, self.nb, self.resources, source, index)
        finally:
            self._probe_budget = None
