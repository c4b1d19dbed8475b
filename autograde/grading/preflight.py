"""Before anyone is graded: one sandboxed kernel must start and import the lab's libraries.

A sandbox that cannot work on this machine (no namespaces, a venv it cannot
show, a broken mount) would otherwise score every student 0 for the grader's
fault. The run stops instead, with the launcher's own words.
"""

from nbformat.v4 import new_code_cell, new_notebook

from autograde.grading.cluster import ClusterExecute, ClusterUnreachable
from autograde.grading.executor import KernelStartError, SandboxedExecute
from autograde.sandbox.environ import temporary_environ


class SandboxError(RuntimeError):
    """Kernels cannot be started here at all: grading stops before anyone is scored."""


def preflight(config, env: dict[str, str], course, scheduler: str | None = None) -> None:
    """Run `import efflib, torch` in a sandboxed kernel set up as the grading folder's
    `config` and `env` say, here or on the Dask cluster at `scheduler`; raise SandboxError
    with the reason when it cannot."""
    nb = new_notebook(cells=[new_code_cell("import efflib, torch")])
    execute = (SandboxedExecute(config=config, probe=False) if scheduler is None
               else ClusterExecute(config=config))
    try:
        with temporary_environ(env):
            nb, _ = execute.preprocess(
                nb, {"nbgrader": {"student": "preflight"}, "metadata": {"path": str(course)}})
    except (KernelStartError, ClusterUnreachable) as e:
        raise SandboxError(f"{e}; nobody was graded") from None
    errors = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    if errors:
        raise SandboxError(f"a sandboxed kernel cannot import efflib and torch "
                           f"({errors[0].ename}: {errors[0].evalue[:300]}); nobody was graded")
