"""Fit the Lab 07 capstone's latency price list to batch-1 timings on this machine.

The grader prices a capstone's batch-1 latency instead of timing it
(autograde/checks/lab07_beyond_compression.PRICE_US): a leaf layer's call costs a fixed
time by kind plus a time per unit of work, and the model's own call a constant. This
script times a zoo of models (the 54 NAS configurations, DigitCNNs, plain stacks of
every priced kind) on one thread (the fastest call of three passes over the zoo, 2 x 40 calls per
model each: a model now and then runs a third slower for a whole pass), and fits the list by
non-negative least squares on relative error. It records the check's list's error on these
timings (goals: GOALS), a fresh fit to copy there when it misses them, and the
solution's ratio to the width-32 DigitCNN priced and measured, quiet and beside busy
processes (the reason for a price: the measured ratio moves with the load).
Run with `make bench` or `.venv/bin/python bench/latency_price.py [--busy N]`.
"""

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from scipy.optimize import nnls

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lab_times import busy  # noqa: E402
from record import load, record  # noqa: E402

from autograde.checks import lab07_beyond_compression as capstone  # noqa: E402
from efflib import models, nas  # noqa: E402
from efflib.latency import NoisyMeasurement, measure_latency  # noqa: E402

SOLUTION = {"width": 12, "depth": 2, "kernel": 3, "expand": 4}  # the lab's capstone config
KINDS = list(capstone.PRICE_US)
PASSES = 3
GOALS = {"rms_error": 0.08, "max_error": 0.2}  # the check's list on this run's timings


def zoo() -> dict[str, nn.Module]:
    """Models that exercise every priced kind at several sizes."""
    zoo = {f"nas {c['width']}/{c['depth']}/{c['kernel']}/{c['expand']}": nas.tiny_net(c)
           for c in nas.all_configs()}
    for w in (4, 8, 16, 24, 32, 48, 64, 96):
        zoo[f"DigitCNN {w}"] = models.digit_cnn(width=w)
    for h in (32, 128, 512):
        zoo[f"mlp {h}"] = nn.Sequential(nn.Flatten(), nn.Linear(64, h), nn.ReLU(),
                                        nn.Linear(h, h), nn.BatchNorm1d(h), nn.ReLU6(),
                                        nn.Linear(h, 10))
    for d in (2, 6, 12):
        zoo[f"deep {d}"] = nn.Sequential(
            *[layer for i in range(d) for layer in (nn.Conv2d(1 if i == 0 else 8, 8, 3, padding=1),
                                                    nn.Hardswish())],
            nn.Flatten(), nn.Linear(512, 10))
    for c, g in ((64, 4), (128, 8), (256, 256), (256, 16)):
        zoo[f"grouped {c}/{g}"] = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, groups=g),
            nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(c, 10))
    for c in (64, 256):
        zoo[f"pointwise {c}"] = nn.Sequential(
            nn.Conv2d(1, c, 1), *[nn.ReLU() for _ in range(6)], nn.AvgPool2d(2), nn.Dropout(),
            nn.Identity(), nn.Flatten(), nn.Linear(16 * c, 10))
    zoo["conv1d"] = nn.Sequential(nn.Flatten(2), nn.Conv1d(1, 16, 5), nn.BatchNorm1d(16),
                                  nn.ReLU(), nn.Flatten(), nn.Linear(16 * 60, 10))
    return zoo


def fastest_us(model: nn.Module, x: torch.Tensor, rounds: int = 2) -> float:
    """Fastest batch-1 call in microseconds, one thread."""
    best = math.inf
    for _ in range(rounds):
        best = min(best, measure_latency(model, x, warmup=5, repeats=40, num_threads=1).minimum)
    return best * 1e6


def terms_row(model: nn.Module) -> list[float]:
    terms = capstone.price_terms(model)
    return [v for k in KINDS for v in terms[k]] + [1.0]  # calls, work by kind; the model's call


def as_list(coef) -> tuple[dict, float]:
    """A coefficient vector as PRICE_US and PRICE_CALL_US, to 3 significant digits."""
    price = {k: (float(f"{coef[2 * i]:.3g}"), float(f"{coef[2 * i + 1]:.3g}"))
             for i, k in enumerate(KINDS)}
    return price, float(f"{coef[-1]:.3g}")


def errors(rows: np.ndarray, measured: np.ndarray, price: dict, call_us: float) -> dict:
    coef = np.array([v for k in KINDS for v in price[k]] + [call_us])
    error = rows @ coef / measured - 1
    return {"rms_error": round(float(np.sqrt((error ** 2).mean())), 3),
            "max_error": round(float(np.abs(error).max()), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=2, help="busy processes for the loaded ratio")
    args = ap.parse_args()
    warnings.simplefilter("ignore", NoisyMeasurement)  # the fastest call is used
    torch.manual_seed(0)
    before = load()
    x = torch.randn(1, 1, 8, 8)
    models_ = {name: m.eval() for name, m in zoo().items()}
    measured = np.array([[fastest_us(m, x) for m in models_.values()]
                         for _ in range(PASSES)]).min(0)
    rows = np.array([terms_row(m) for m in models_.values()])
    coef, _ = nnls(rows / measured[:, None], np.ones(len(measured)))  # relative error
    fitted, fitted_call = as_list(coef)
    checked = {"price_us": capstone.PRICE_US, "call_us": capstone.PRICE_CALL_US}
    checked |= errors(rows, measured, capstone.PRICE_US, capstone.PRICE_CALL_US)
    solution, reference = nas.tiny_net(SOLUTION).eval(), models.digit_cnn(width=32).eval()
    ratios = {"quiet": capstone.batch1_ms(solution)}
    with busy(args.busy):
        ratios["busy"] = capstone.batch1_ms(solution)
    figures = {
        "models": len(models_), "check": checked,
        "fit": {"price_us": fitted, "call_us": fitted_call,
                **errors(rows, measured, fitted, fitted_call)},
        "solution_priced_times": round(capstone.priced_us(solution)
                                       / capstone.priced_us(reference), 2),
        **{f"solution_measured_times_{k}": round(ms / ref, 2) for k, (ms, ref) in ratios.items()},
        "busy_processes": args.busy,
    }
    for key, value in figures.items():
        print(f"{key:32s} {value}")
    error = rows @ coef / measured - 1
    worst = sorted(zip(error, models_, strict=True), key=lambda t: -abs(t[0]))[:5]
    print("worst fits: " + ", ".join(f"{name} {e:+.0%}" for e, name in worst))
    print(f"recorded in {record('latency_price', figures, before, goals=GOALS)}")
    missed = [k for k, goal in GOALS.items() if checked[k] > goal]
    if missed:
        print(f"the check's price list misses {', '.join(missed)} on these timings: copy the "
              "fit into PRICE_US and PRICE_CALL_US (autograde/checks/lab07_beyond_compression)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
