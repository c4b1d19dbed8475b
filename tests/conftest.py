"""Shared fixtures: the solution code of each lab, loaded without running its checks."""

import os
import types

import matplotlib
import pytest
import torch

from autograde.build import solution_namespace

matplotlib.use("Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # one per worker: oversubscribed cores make torch far slower


_SOLUTIONS: dict[str, types.SimpleNamespace] = {}


@pytest.fixture
def solution(request) -> types.SimpleNamespace:
    """The solution of the lab a test file is named after (tests/test_checks_LAB.py),
    loaded once per session: a new lab needs no fixture of its own."""
    lab = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_checks_")
    if lab not in _SOLUTIONS:
        _SOLUTIONS[lab] = solution_namespace(lab)
    return _SOLUTIONS[lab]
