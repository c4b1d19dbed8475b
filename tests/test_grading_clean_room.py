"""The clean room, graded by the grading command (autograde/grading/clean_kernel.py): answers
that reach past the kernel's refusals (tests/kernel_tricks.py) lose exactly their
questions' points, the solution beside them keeps full marks, and the tricks kept their
points where functions came from the student's kernel."""

import csv

import nbformat
import pytest
from kernel_tricks import LAB05, LAB06, LAB07, without

from autograde.course import build
from autograde.grading.grader import Grader
from autograde.grading.report import failed_cells
from autograde.grading.settings import Settings
from autograde.sandbox.policy import isolation_problem

pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]

TRICKS = {  # lab: (tricks by answer cell, the test cells that must lose their points)
    # Q3's mean squared error quantizes with the student's Q2
    "lab05_quantization": (LAB05, {"q2_linear_quantize_test", "q3_mse_test",
                                   "q5_centroid_grad_test", "q7_binary_test",
                                   "q8_fake_quant_test", "q9_int_conv_test"}),
    "lab06_loops": (LAB06, {"q3_numba_test"}),
    "lab07_beyond_compression": (LAB07, {"q1_distillation_loss_test",
                                         "q5_pareto_front_test"}),
}
# judged on the operations they ran (judging.traces), which no code in the kernel switches
# off: lost with or without the clean room
TRACED = {"q2_linear_quantize_test"}
WHY = {  # what the reason says of each, in the clean room
    "q5_centroid_grad_test": "efflib.quant.kmeans.centroid_grad",
    "q7_binary_test": "efflib.quant.binary.binarize",
    "q8_fake_quant_test": "efflib.quant.linear._FakeQuantize.forward",
    "q9_int_conv_test": "name '_real_mult' is not defined",  # a function is never copied
    "q3_numba_test": "efflib.loops._conv_bounds",
    "q5_pareto_front_test": "`pareto_front` is not defined where the grader runs",
    "q2_linear_quantize_test": "quantize_per_tensor",
    "q3_mse_test": "quantize_per_tensor",
    "q1_distillation_loss_test": "kl_div",
}


def tricky_notebook(lab: str, tricks: dict) -> nbformat.NotebookNode:
    """The solution with each trick in place of the definitions it replaces."""
    nb = build.source_notebook(lab)
    found = set()
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in tricks:
            names, code = tricks[gid]
            cell.source = without(cell.source, names) + "\n" + code
            found.add(gid)
    assert found == set(tricks), set(tricks) - found
    return nb


def graded(lab: str, tmp_path, tricks: dict, clean_room: bool = True) -> dict[str, dict]:
    """Scores by student and test cell: the tricks and the solution, graded together."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(tricky_notebook(lab, tricks), incoming / "tricky.ipynb")
    nbformat.write(build.source_notebook(lab), incoming / "honest.ipynb")
    grader = Grader(lab, tmp_path / "course", workers=2,
                    settings=Settings(cell_timeout=120, clean_room=clean_room))
    results = grader.run(incoming, progress=False)
    assert {r.status for r in results} == {"graded"}, results
    with open(grader.course / "reports" / lab / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    whole = {student: failed_cells(grader.course / "autograded" / student / lab / f"{lab}.ipynb")
             for student in ("tricky", "honest")}
    return {row["student"]: {**{k: float(v) for k, v in row.items() if k.endswith("_test")},
                             "reason": row["reason"],
                             "why": {t: why for why, ids in whole[row["student"]].items()
                                     for t in ids}} for row in rows}


def test_a_trick_replaces_the_solutions_definitions_only():
    source = "X = None\n\n@numba.njit\ndef conv_kernel(a):\n    return a\n\ndef other():\n    pass"
    assert without(source, ["conv_kernel", "X"]).split() == ["def", "other():", "pass"]


@pytest.mark.parametrize("lab", sorted(TRICKS))
def test_each_trick_loses_exactly_its_questions_points(lab, tmp_path):
    tricks, lost = TRICKS[lab]
    scores = graded(lab, tmp_path, tricks)
    honest, tricky = scores["honest"], scores["tricky"]
    assert not [k for k, v in honest.items() if v == 0], honest["reason"]
    assert not tricky["why"].keys() - lost, tricky["reason"]
    zero = {k for k, v in tricky.items() if v == 0}
    assert zero == lost, f"{lab}: lost {sorted(zero)}, should lose {sorted(lost)}: " \
                         f"{tricky['reason']}"
    for test in lost:
        assert WHY[test] in tricky["why"][test], tricky["why"][test]


@pytest.mark.parametrize("lab", sorted(TRICKS))
def test_the_tricks_kept_their_points_where_functions_came_from_the_kernel(lab, tmp_path):
    """Without the clean room the kernel's own efflib and watch decide, and are fooled."""
    tricks, lost = TRICKS[lab]
    tricky = graded(lab, tmp_path, tricks, clean_room=False)["tricky"]
    zero = {k for k, v in tricky.items() if v == 0}
    assert not zero & (lost - TRACED), tricky["reason"]
    assert lost & TRACED <= zero, tricky["reason"]
