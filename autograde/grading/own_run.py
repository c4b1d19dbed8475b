"""Re-measured numbers labelled: beside the grader's run of a cell, what the student's showed.

The autograded notebook is the grader's own run, so a measured accuracy, a timing or a
loss in it is the grader's, not the number the student saw (and may have written
about). Where a cell's text output differs from the one in the submitted notebook, a
note after it says so and quotes the student's, so that the formgrader and the
feedback show both. Test cells are left as they are: their output is the check's.
"""


import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

from autograde.grading.course_folder import InCourse
from autograde.nbgrader_seam.cells import is_test_cell

LINES, WIDTH = 8, 200  # of the student's output quoted
NOTE = "[efflab] Above: the grader's run of this cell. The submitted notebook showed:\n"


def text_of(outputs: list) -> str:
    """What a cell printed, as a reader sees it: streams (progress bars at their last
    state) and plain-text results; images and HTML are left out."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
    lines = "".join(p if isinstance(p, str) else "".join(p) for p in parts).splitlines()
    return "\n".join(line.rsplit("\r", 1)[-1].rstrip() for line in lines).strip()


def quoted(text: str) -> str:
    lines = [line[:WIDTH] for line in text.splitlines()]
    more = len(lines) - LINES
    return "\n".join(lines[:LINES] + ([f"... ({more} more lines)"] if more > 0 else [])) + "\n"


class StudentsOwnRun(InCourse, NbGraderPreprocessor):
    """After the grader's run: each changed cell's output is followed by the student's."""

    def preprocess(self, nb, resources):
        names = (resources or {}).get("nbgrader", {})
        course = self.course_folder()
        lab, student = names.get("assignment", ""), names.get("student", "")
        path = course / "submitted" / student / lab / f"{names.get('notebook', lab)}.ipynb"
        try:
            submitted = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            return nb, resources  # nothing to compare with (the preflight's notebook)
        theirs = {c.get("id"): text_of(c.get("outputs", [])) for c in submitted.cells
                  if c.cell_type == "code"}
        for cell in nb.cells:
            if cell.cell_type != "code" or is_test_cell(cell) or not theirs.get(cell.get("id")):
                continue
            own = theirs[cell.get("id")]
            if own != text_of(cell.get("outputs", [])):
                cell.outputs.append(nbformat.v4.new_output(
                    "stream", name="stdout", text=NOTE + quoted(own)))
        return nb, resources
