"""Profiling cost of efflib.profile relative to one plain forward pass (goal: <= 1.5x).

Both are timed the same way, best of several runs after a warm-up, batch 1 at
224x224, under no_grad, with the threads torch uses by default.

    python bench/profiler_overhead.py [--repeats 5]
"""

import argparse
import sys
import time

import torch

from efflib import models
from efflib.metrics import profile

GOAL = 1.5


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    x = torch.randn(1, 3, 224, 224)
    ok = True
    for name, make in [("resnet50", models.resnet50), ("mobilenet_v2", models.mobilenet_v2),
                       ("vgg16", models.vgg16)]:
        model = make().eval()
        with torch.no_grad():
            forward = best(lambda m=model: m(x), args.repeats)
        prof = best(lambda m=model: profile(m, x), args.repeats)
        ratio = prof / forward
        ok &= ratio <= GOAL or name != "resnet50"
        print(f"{name:14s} forward {forward * 1e3:7.1f} ms  profile {prof * 1e3:7.1f} ms  "
              f"ratio {ratio:4.2f}x  (goal <= {GOAL}x for resnet50, "
              f"{torch.get_num_threads()} threads)")
    print("goal met" if ok else "GOAL MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
