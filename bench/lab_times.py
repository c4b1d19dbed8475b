"""Time each lab's solution end to end in a fresh kernel: on a quiet machine, then again
beside busy processes (students and graders share machines).

Goals (issue 29): every solution runs in at most 30 s on 2 CPU cores when quiet and 45 s
beside two busy processes. Each run's errors are counted too (a solution must run clean).
Run with `make bench` or `.venv/bin/python bench/lab_times.py [--busy N] [lab ...]`.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import RESULTS, load, record  # noqa: E402

from autograde.course import build  # noqa: E402
from efflib.latency import busy  # noqa: E402

GOALS = {"quiet_s": 30.0, "busy_s": 45.0}  # seconds, recorded with the figures for the README


def run(nb, cwd: Path) -> tuple[float, int]:
    """Seconds to execute `nb` (kernel start included) and the number of erroring cells."""
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    errors = sum(o.output_type == "error" for c in nb.cells if c.cell_type == "code"
                 for o in c.outputs)
    return time.perf_counter() - start, errors


def earlier_figures() -> dict:
    """The figures of the last recorded run ({} when there is none)."""
    try:
        return json.loads((RESULTS / "lab_times.json").read_text())["figures"]
    except (OSError, ValueError, KeyError):
        return {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labs", nargs="*", default=build.lab_names())
    ap.add_argument("--busy", type=int, default=2, help="busy processes for the loaded run")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; goals: every solution at most {GOALS['quiet_s']:g} s quiet, "
          f"{GOALS['busy_s']:g} s beside {args.busy} busy processes")
    print(f"{'lab':20s} {'quiet s':>8s} {'busy s':>8s} {'blank s':>8s} {'errors':>6s}")
    figures, before = {}, load()
    with tempfile.TemporaryDirectory() as tmp:
        for lab in args.labs:
            quiet_s, errors = run(build.source_notebook(lab), Path(tmp))
            blank_s, _ = run(nbformat.read(build.LABS / lab / f"{lab}.ipynb", 4), Path(tmp))
            with busy(args.busy):
                busy_s, busy_errors = run(build.source_notebook(lab), Path(tmp))
            figures[lab] = {"solution_s": round(quiet_s, 1), "busy_s": round(busy_s, 1),
                            "blank_s": round(blank_s, 1), "busy_processes": args.busy,
                            "solution_errors": errors + busy_errors}
            print(f"{lab:20s} {quiet_s:8.1f} {busy_s:8.1f} {blank_s:8.1f} "
                  f"{errors + busy_errors:6d}")
    kept = {lab: v for lab, v in earlier_figures().items()
            if lab not in figures and lab in build.lab_names()}
    if kept:  # a run on some labs keeps the others' earlier figures
        print(f"kept the earlier figures of {', '.join(kept)}")
    merged = {**kept, **figures}
    in_order = {lab: merged[lab] for lab in build.lab_names() if lab in merged}
    print(f"recorded in {record('lab_times', in_order, before, goals=GOALS)}")
    measured = {"quiet_s": "solution_s", "busy_s": "busy_s"}  # goal -> its figure
    missed = [f"{lab} {goal[:-2]} {v[measured[goal]]:g} s" for lab, v in in_order.items()
              for goal in GOALS if v[measured[goal]] > GOALS[goal]]
    print("goals missed: " + ", ".join(missed) if missed else "goals met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
