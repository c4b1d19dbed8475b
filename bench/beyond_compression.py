"""Lab 07's measured results, from a run of its solution in a fresh kernel: the distillation
gain over three seeds, the early-exit curve, the architecture the search found and the
capstone model's size, accuracy and latency (the figures the README states).

Run with `make bench` or `.venv/bin/python bench/beyond_compression.py`.
"""

import sys

from record import load, record
from solution_run import measured_by_the_solution

LAB = "lab07_beyond_compression"


def main() -> int:
    before = load()
    figures = measured_by_the_solution(LAB)
    d = figures["distillation"]
    print("distillation, 100 labels:", ", ".join(f"{k} {v}" for k, v in d.items()))
    print("early exit (threshold, exit rate, accuracy, MACs):", figures["early_exit"])
    print("search:", figures["search"])
    print("capstone:", figures["capstone"])
    print(f"recorded in {record('beyond_compression', figures, before)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
