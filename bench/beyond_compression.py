"""Lab 07's measured results, from a run of its solution in a fresh kernel: the distillation
gain over three seeds, the early-exit curve, the architecture the search found and the
capstone model's size, accuracy and latency (the figures the README states).

Run with `make bench` or `.venv/bin/python bench/beyond_compression.py`.
"""

import json
import sys
import tempfile
from pathlib import Path

from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import load, record  # noqa: E402

from autograde.course import build  # noqa: E402

LAB = "lab07_beyond_compression"


def measured_by_the_solution() -> dict:
    """The solution's `measured` dict after a full run (its last cell prints it as JSON)."""
    nb = build.source_notebook(LAB)
    nb.cells.append(new_code_cell("import json; print(json.dumps(measured))"))
    with tempfile.TemporaryDirectory() as tmp:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    return json.loads(text)


def main() -> int:
    before = load()
    figures = measured_by_the_solution()
    d = figures["distillation"]
    print("distillation, 100 labels:", ", ".join(f"{k} {v}" for k, v in d.items()))
    print("early exit (threshold, exit rate, accuracy, MACs):", figures["early_exit"])
    print("search:", figures["search"])
    print("capstone:", figures["capstone"])
    print(f"recorded in {record('beyond_compression', figures, before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
