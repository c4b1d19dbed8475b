"""Grading throughput: `python -m autograde grade` with 2 workers vs serial `nbgrader autograde`.

Both grade the same N copies of Lab 01's solution from scratch in fresh folders
(goal: >= 1.8x faster on 2 cores). The serial run is plain nbgrader with no
sandbox; the parallel one pays for its sandbox and for judging test cells outside the kernel.

    python bench/grade_speed.py [--students 8] [--lab lab01_layers]
"""

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import load, record  # noqa: E402

from autograde.course import build  # noqa: E402
from autograde.grading.grader import Grader  # noqa: E402
from autograde.nbgrader_seam import command  # noqa: E402

GOAL = 1.8


def serial(lab: str, n: int, tmp: Path) -> float:
    course = tmp / "serial"
    build.write_sources([lab], course / "source")
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.source_directory = 'source'\n"
        "c.CourseDirectory.release_directory = 'release'\n")
    command.run(course, "generate_assignment", lab, "--force")
    for i in range(n):
        dest = course / "submitted" / f"s{i}" / lab
        dest.mkdir(parents=True)
        nbformat.write(build.source_notebook(lab), dest / f"{lab}.ipynb")
    start = time.perf_counter()
    command.run(course, "autograde", lab, "--force", "--create")
    return time.perf_counter() - start


def parallel(lab: str, n: int, tmp: Path, workers: int) -> dict[str, float]:
    incoming = tmp / "incoming"
    incoming.mkdir()
    for i in range(n):
        nbformat.write(build.source_notebook(lab), incoming / f"s{i}.ipynb")
    grader = Grader(lab, tmp / "parallel", workers=workers)
    grader.release()  # both timings exclude setting up the assignment
    grader.run(incoming, progress=False)
    return grader.timings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=8)
    ap.add_argument("--lab", default="lab01_layers")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    before = load()
    tmp = Path(tempfile.mkdtemp(prefix="efflab-grade-bench-"))
    try:
        t_serial = serial(args.lab, args.students, tmp)
        t_par = parallel(args.lab, args.students, tmp, args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    speedup = t_serial / t_par["autograde"]
    print(f"{args.students} x {args.lab}: serial nbgrader autograde {t_serial:.1f} s; "
          f"python -m autograde grade, {args.workers} workers, sandboxed: autograde "
          f"{t_par['autograde']:.1f} s ({speedup:.2f}x, goal >= {GOAL}x), then feedback and "
          f"reports {t_par['feedback and reports']:.1f} s")
    record("grade_speed", {"students": args.students, "lab": args.lab, "workers": args.workers,
                           "serial_s": round(t_serial, 1),
                           "parallel_s": round(t_par["autograde"], 1),
                           "speedup": round(speedup, 2)}, before)
    return 0 if speedup >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
