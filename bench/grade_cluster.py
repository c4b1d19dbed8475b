"""Grading on Dask distributed: throughput on 1 and 2 workers, and Dask's cost per student.

All three runs grade the same N copies of Lab 01's solution from scratch, in fresh
grading folders, one after the other in one process, so they share the machine's load:
the local pool with 2 worker processes, then a LocalCluster with 1 worker process and
with 2 (each `--nthreads 1`, as the README asks). Throughput is students per minute of
the autograde phase; Dask's overhead per student is the 2-worker cluster's time minus
the local pool's, divided by N.

    python bench/grade_cluster.py [--students 6] [--lab lab01_layers]
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from distributed import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from record import load, record  # noqa: E402

from autograde.course import build  # noqa: E402
from autograde.grading.grader import Grader  # noqa: E402


def grade(lab: str, n: int, folder: Path, scheduler: str | None) -> float:
    """Seconds of the autograde phase for `n` solutions (release and preflight excluded)."""
    incoming = folder / "incoming"
    incoming.mkdir(parents=True)
    for i in range(n):
        nbformat.write(build.source_notebook(lab), incoming / f"s{i}.ipynb")
    grader = Grader(lab, folder / "course", workers=2, scheduler=scheduler)
    grader.run(incoming, progress=False)
    return grader.timings["autograde"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=6)
    ap.add_argument("--lab", default="lab01_layers")
    args = ap.parse_args()
    before = load()
    tmp = Path(tempfile.mkdtemp(prefix="efflab-cluster-bench-"))
    try:
        local = grade(args.lab, args.students, tmp / "local", None)
        times = {}
        for n_workers in (1, 2):
            with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                times[n_workers] = grade(args.lab, args.students, tmp / f"dask{n_workers}",
                                         cluster.scheduler_address)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_min = {k: round(60 * args.students / v, 1) for k, v in times.items()}
    overhead = (times[2] - local) / args.students
    print(f"{args.students} x {args.lab}: local pool (2 workers) {local:.1f} s; Dask 1 worker "
          f"{times[1]:.1f} s ({per_min[1]} students/min), 2 workers {times[2]:.1f} s "
          f"({per_min[2]} students/min, {times[1] / times[2]:.2f}x); Dask's cost "
          f"{overhead:+.2f} s per student against the local pool")
    record("grade_cluster", {"students": args.students, "lab": args.lab,
                             "local_s": round(local, 1), "dask1_s": round(times[1], 1),
                             "dask2_s": round(times[2], 1),
                             "per_minute": {str(k): v for k, v in per_min.items()},
                             "overhead_s_per_student": round(overhead, 2)}, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
