"""Issue 29: what the texts of Labs 05-08 say they measured holds in the solution's own run,
quiet and beside two busy processes (the claims are in tests/lab_claims.py)."""

import json
import sys
import tempfile
from pathlib import Path

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from autograde.course import build
from efflib.latency import busy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import lab_claims  # noqa: E402 - a helper next to the tests

LABS = sorted(lab_claims.CLAIMS)


def run_claims(lab: str, busy_processes: int) -> dict[str, tuple[bool, str]]:
    """Run `lab`'s solution as a student does (full training, timing at full length) in a
    fresh kernel beside `busy_processes` spinning ones; its claims judged in that kernel."""
    nb = build.source_notebook(lab)
    nb.cells.append(new_code_cell(
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import lab_claims; "
        f"print(json.dumps(lab_claims.verdicts({lab!r}, globals())))"))
    with tempfile.TemporaryDirectory() as tmp, busy(busy_processes):
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return {k: tuple(v) for k, v in json.loads(text).items()}


@pytest.mark.parametrize("lab", LABS)
def test_each_claim_quotes_the_labs_text(lab):
    """A claim whose words left the text would test nothing; every lab of 05-08 has some."""
    text = lab_claims.words_of("\n".join(
        c.source for c in build.source_notebook(lab).cells if c.cell_type == "markdown"))
    missing = [w for w in lab_claims.CLAIMS[lab] if " ".join(w.split()) not in text]
    assert not missing, f"{lab}'s text no longer says: {missing}"
    assert len(lab_claims.CLAIMS[lab]) >= 5


def test_a_claim_fails_on_figures_that_contradict_it_or_are_missing():
    judged = lab_claims.verdicts("lab06_loops", {
        "speed": {"Python loops": 0.5, "C": 1.0, "C, tiled": 1.5, "im2col + GEMM": 9.0,
                  "torch, 1 thread": 20.0},
        "FLOP": 231e6, "best": "mcpqrs", "worst": "mcrspq"})
    held = {w: ok for w, (ok, _) in judged.items()}
    assert not held["Pure Python would need tens of seconds for it (more on a busy machine)"]
    assert not held["The best numba orders keep the output column q innermost"]  # best: s
    assert not held["the fast one must be at least 2x faster"]
    assert held["torch still leads"]
    keeps_up = "keeps up with the tiled C loop even after copying the input into its patch matrix"
    assert held[keeps_up]
    slower = lab_claims.verdicts("lab06_loops", {"speed": {
        "C, tiled": 30.0, "im2col + GEMM": 20.0, "torch, 1 thread": 60.0}})
    assert not slower[keeps_up][0]
    ok, figures = judged["with the same predictions as Lab 05's integer model on every image"]
    assert not ok and "KeyError" in figures


@pytest.mark.course
@pytest.mark.parametrize("busy_processes", [0, 2], ids=["quiet", "beside-2-busy"])
@pytest.mark.parametrize("lab", LABS)
def test_what_the_lab_says_it_measured_holds(lab, busy_processes):
    judged = run_claims(lab, busy_processes)
    failed = [f"{words!r}: {figures}" for words, (ok, figures) in judged.items() if not ok]
    assert not failed, "\n".join(failed)
