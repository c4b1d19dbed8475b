"""Shared fixtures: the solution code of each lab, loaded without running its checks."""

import os
import types

import jupytext
import matplotlib
import pytest
import torch

from autograde.build import source_path

matplotlib.use("Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one per worker: oversubscribed cores make torch far slower


def solution_namespace(lab: str) -> types.SimpleNamespace:
    """Run a lab source's setup cells and answer cells (not its test or plot cells)."""
    nb = jupytext.read(source_path(lab), fmt="py:percent")
    env: dict = {"__name__": f"solution_{lab}"}
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    setup = True  # every code cell before the first graded one sets the lab up
    for i, cell in enumerate(code_cells):
        setup = setup and not cell.metadata.get("nbgrader")
        if setup:
            exec(compile(cell.source, f"{lab}:setup{i}", "exec"), env)
        elif cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"{lab}:{cell.metadata['nbgrader']['grade_id']}",
                         "exec"), env)
    return types.SimpleNamespace(**{k: v for k, v in env.items() if not k.startswith("__")})


_SOLUTIONS: dict[str, types.SimpleNamespace] = {}


@pytest.fixture
def solution(request) -> types.SimpleNamespace:
    """The solution of the lab a test file is named after (tests/test_checks_LAB.py),
    loaded once per session: a new lab needs no fixture of its own."""
    lab = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_checks_")
    if lab not in _SOLUTIONS:
        _SOLUTIONS[lab] = solution_namespace(lab)
    return _SOLUTIONS[lab]
