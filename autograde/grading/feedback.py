"""Feedback shows a failed test's message only.

IPython's tracebacks quote the lines around the failing one, which would show
hidden tests to the student.
"""

from nbgrader.preprocessors import NbGraderPreprocessor

from autograde.nbgrader_glue import is_test_cell


class ShortTracebacks(NbGraderPreprocessor):
    """In feedback, a failed test cell's error is its one-line message."""

    def preprocess_cell(self, cell, resources, index):
        if is_test_cell(cell):
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    out.traceback = [f"{out.ename}: {out.evalue}"]
        return cell, resources
