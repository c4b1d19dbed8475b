"""Time each lab's solution and blank release end to end in a fresh kernel.

Target: every solution runs in under 60 s on 2 CPU cores.
Run with `make bench` or `.venv/bin/python bench/lab_times.py [lab ...]`.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import load, record  # noqa: E402

from autograde import build  # noqa: E402

TARGET_S = 60.0


def run(nb, cwd: Path) -> tuple[float, int]:
    """Seconds to execute `nb` (kernel start included) and the number of erroring cells."""
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    errors = sum(o.output_type == "error" for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    return time.perf_counter() - start, errors


def main(labs: list[str]) -> int:
    print(f"{os.cpu_count()} CPUs; target: solution < {TARGET_S:.0f} s")
    print(f"{'lab':20s} {'solution s':>10s} {'errors':>6s} {'blank s':>8s} {'errors':>6s}")
    worst, figures, before = 0.0, {}, load()
    with tempfile.TemporaryDirectory() as tmp:
        for lab in labs:
            sol_s, sol_err = run(build.source_notebook(lab), Path(tmp))
            blank = nbformat.read(build.LABS / lab / f"{lab}.ipynb", 4)
            blank_s, blank_err = run(blank, Path(tmp))
            worst = max(worst, sol_s)
            figures[lab] = {"solution_s": round(sol_s, 1), "blank_s": round(blank_s, 1),
                            "solution_errors": sol_err}
            print(f"{lab:20s} {sol_s:10.1f} {sol_err:6d} {blank_s:8.1f} {blank_err:6d}")
    print(f"recorded in {record('lab_times', figures, before)}")
    print(f"slowest solution: {worst:.1f} s = {worst / TARGET_S:.2f} x the {TARGET_S:.0f} s budget")
    return 0 if worst < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or build.lab_names()))
