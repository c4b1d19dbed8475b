"""Compiled C from a student runs only inside the sandbox when grading: Lab 06's solution,
graded with an answer whose C program tries to read what the sandbox hides."""

import csv

import nbformat
import pytest

from autograde.course import build
from autograde.grading.grader import Grader
from autograde.grading.settings import Settings
from autograde.sandbox.policy import isolation_problem

LAB = "lab06_loops"
pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]
SECRET = build.ROOT / "solutions" / LAB / f"{LAB}.py"
SPY = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        printf("%s %s\n", f ? "READ" : "DENIED", argv[i]);
        if (f) fclose(f);
    }
    return 0;
}
"""


def spying_solution():
    nb = build.source_notebook(LAB)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q7_deploy":
            body = cell.source.split('"""', 2)[2]  # the function body after its docstring
            cell.source = (
                "def run_standalone(header, source, images):\n"
                f"    spy = cc.build({SPY!r}, kind='exe', name='spy')\n"
                "    import os\n"
                "    print('BUILT', spy, 'HOME', os.environ.get('HOME'))\n"
                "    print(subprocess.run([str(spy), "
                f"{str(SECRET)!r}, '/root/.bashrc', os.environ.get('COURSE', '/etc/shadow')],"
                " capture_output=True, text=True).stdout)\n"
                + body)
    return nb


def test_student_c_compiles_and_runs_inside_the_sandbox(tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(spying_solution(), incoming / "spy.ipynb")
    grader = Grader(LAB, tmp_path / "course", workers=1,
                    settings=Settings(cell_timeout=120))
    results = grader.run(incoming, progress=False)
    assert results[0].status == "graded", results
    nb = nbformat.read(grader.course / "autograded" / "spy" / LAB / f"{LAB}.ipynb", 4)
    cell = next(c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "q7_deploy_test")
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert f"DENIED {SECRET}" in text and "DENIED /root/.bashrc" in text, text
    assert "READ" not in text
    built = text.split("BUILT ", 1)[1].split()[0]
    home = text.split("HOME ", 1)[1].split()[0]
    assert "/efflab-" in home and built.startswith(home), (built, home)  # the scratch folder
    with open(grader.course / "reports" / LAB / "grades.csv") as f:
        row = next(csv.DictReader(f))
    assert row["q7_deploy_test"] == "2", row  # the spying answer still did its job
