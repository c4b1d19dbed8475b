"""Every lab, one way: its autograded points are judged in the grader, and every judged test
cell passes the solution as the grader runs it (one test each, for every lab)."""

import pytest
from conftest import judge_solution, lab_solution

from autograde.course import build, inventory
from autograde.judging.judge import judged_checks

POINTS = {  # lab: (judged in the grader, autograded, graded by hand)
    "lab01_layers": (25, 25, 2), "lab02_metrics": (29, 29, 3),
    "lab03_architectures": (27, 27, 2), "lab04_pruning": (18, 18, 2),
    "lab05_quantization": (36, 36, 2), "lab06_loops": (26, 26, 2),
    "lab07_beyond_compression": (20, 20, 2), "lab08_porting": (20, 20, 2),
}


def test_every_lab_has_its_points():
    assert sorted(POINTS) == build.lab_names()


@pytest.mark.parametrize("lab", sorted(POINTS))
def test_judged_in_the_grader(lab):
    """Points whose test cells are judged outside the student's kernel, of all autograded,
    and the points a person gives."""
    facts = inventory.facts(lab)
    assert (facts.judged_points, facts.auto_points, facts.manual_points) == POINTS[lab]


@pytest.mark.parametrize("lab", sorted(POINTS))
def test_every_judged_cell_passes_the_solution_as_the_grader_runs_it(lab):
    judged = {c.metadata["nbgrader"]["grade_id"] for c in build.source_notebook(lab).cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
              and judged_checks(c.source)}
    verdicts = judge_solution(lab, vars(lab_solution(lab)))
    assert set(verdicts) == judged and judged
    assert all(v == "" for v in verdicts.values()), verdicts
