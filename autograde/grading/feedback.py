"""What students see in feedback: short failures, question names, math that renders offline.

IPython's tracebacks quote the lines around the failing one, which would show
hidden tests to the student, so a failed test shows its one-line message. Each
graded cell is labelled with its question's heading ("Q2. Convolution output
sizes"), an answer still waiting for a person says so, and nbgrader's automatic
"No response." is dropped where the check below already reports the answer.
Math becomes MathML, which browsers render without MathJax (grading is offline).
The page itself is templates/efflab_feedback.
"""

import re
from pathlib import Path

from latex2mathml.converter import convert
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

from autograde.grading.sanitize import clean_html
from autograde.headings import headings
from autograde.nbgrader_seam.cells import is_test_cell
from autograde.nbgrader_seam.command import run
from autograde.nbgrader_seam.gradebook import connect

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "efflab_feedback"
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$([^$\n]+?)\$", re.S)


def page_args() -> list[str]:
    """Command-line settings of `nbgrader generate_feedback` for efflab's page (given there,
    not in the grading folder's config, which the formgrader reads for its own pages)."""
    return [f"--HTMLExporter.template_name={TEMPLATE}",
            f"--HTMLExporter.extra_template_basedirs={TEMPLATES}"]


def generate(course: Path, lab: str, student: str | None = None,
             extra_env: dict[str, str] | None = None):
    """`nbgrader generate_feedback` with efflab's page, for one student or for every one
    (the grader after a batch, `export`, the formgrader's button)."""
    args = ["generate_feedback", lab, "--force", *page_args()]
    if student is not None:
        args += ["--student", student]
    return run(course, *args,
               extra_env={"JUPYTER_PATH": str(course / "jupyter"), **(extra_env or {})})


class ShortTracebacks(NbGraderPreprocessor):
    """In feedback, a failed test cell's error is its one-line message."""

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources


class QuestionTitles(NbGraderPreprocessor):
    """Label graded cells with their question, mark answers waiting for hand grading."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        pending = set()
        with connect(info["db_url"]) as gb:
            try:
                grades = gb.find_submission_notebook(info["notebook"], info["assignment"],
                                                     info["student"]).grades
                pending = {g.name for g in grades if g.needs_manual_grade}
            except MissingEntry:
                pass
        question = ""
        for cell in nb.cells:
            if cell.cell_type == "markdown" and (heads := headings(cell.source)):
                question = heads[0].label
            g = cell.metadata.get("nbgrader", {})
            if g.get("grade") or g.get("solution"):
                cell.metadata["efflab_question"] = question
                g["pending"] = g.get("grade_id") in pending
                if cell.cell_type == "code" and g.get("comment") == "No response.":
                    g["comment"] = None
        return nb, resources


def to_mathml(markdown: str) -> str:
    """$...$ and $$...$$ as MathML; a formula it cannot read stays as written. What the
    converter copies through from the TeX (`\\text{<b>}`) passes the allow-list."""
    def one(m):
        tex, display = (m.group(1), "block") if m.group(1) is not None else (m.group(2), "inline")
        try:
            return clean_html(convert(tex.strip(), display=display))
        except Exception:  # noqa: BLE001 - the raw TeX is still readable
            return m.group(0)
    return _MATH.sub(one, markdown)


class MathML(NbGraderPreprocessor):
    """Markdown math as MathML in feedback pages."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "markdown" and "$" in cell.source:
            cell.source = to_mathml(cell.source)
        return cell, resources
