"""Lab 08's deployment table, from a run of its solution in a fresh kernel: for PyTorch fp32
and int8, ONNX Runtime fp32 and int8 and the standalone C program, the bytes on disk, the
runtime's shared libraries, a cold start to the first prediction with its peak memory,
latency at batch 1 and 64 and test accuracy, all measured in one run (the README's table).

Run with `make bench` or `.venv/bin/python bench/deployment.py`.
"""

import sys

from record import load, record
from solution_run import measured_by_the_solution

LAB = "lab08_porting"


def main() -> int:
    before = load()
    measured = measured_by_the_solution(LAB)
    figures = {"deployment": measured["deployment"], "level_us": measured["level_us"],
               "bit_diff": measured["bit_diff"]}
    for name, row in figures["deployment"].items():
        print(f"{name:<11}", ", ".join(f"{k} {v:g}" for k, v in row.items()))
    print("ORT levels (µs at batch 1):", figures["level_us"])
    print(f"recorded in {record('deployment', figures, before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
