"""A lab's solution run in a fresh kernel as a student runs it: its `measured` dict."""

import json
import sys
import tempfile
from pathlib import Path

from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from autograde.course import build  # noqa: E402


def measured_by_the_solution(lab: str) -> dict:
    """The solution's `measured` dict after a full run (a last cell prints it as JSON)."""
    nb = build.source_notebook(lab)
    nb.cells.append(new_code_cell("import json; print(json.dumps(measured))"))
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return json.loads(text)
