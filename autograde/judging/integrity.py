"""The integrity probe: run in the student's kernel after each kernel-run test cell.

`code(nonce)` is the cell the grader sends; its one line of output that starts
with the nonce is the verdict, "clean" or what it found.
"""

import sysconfig
from pathlib import Path

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
