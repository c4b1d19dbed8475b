"""Shared fixtures: the solution code of each lab, loaded without running its checks."""

import types

import jupytext
import matplotlib
import pytest

from autograde.build import source_path

matplotlib.use("Agg")


def solution_namespace(lab: str) -> types.SimpleNamespace:
    """Run a lab source's setup and answer cells (not its test or plot cells)."""
    nb = jupytext.read(source_path(lab), fmt="py:percent")
    env: dict = {"__name__": f"solution_{lab}"}
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    exec(compile(code_cells[0].source, f"{lab}:setup", "exec"), env)
    for cell in code_cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"{lab}:{cell.metadata['nbgrader']['grade_id']}",
                         "exec"), env)
    return types.SimpleNamespace(**{k: v for k, v in env.items() if not k.startswith("__")})


@pytest.fixture(scope="session")
def lab01():
    return solution_namespace("lab01_layers")


@pytest.fixture(scope="session")
def lab02():
    return solution_namespace("lab02_metrics")


@pytest.fixture(scope="session")
def lab03():
    return solution_namespace("lab03_architectures")
