"""Roofline estimate: a layer takes about max(compute time, memory time).

Compute time = FLOPs / peak FLOP/s; memory time = bytes moved (weights, input and
output activations) / bandwidth (lecture 02; Williams et al., Roofline,
https://doi.org/10.1145/1498765.1498785). Peaks are measured on this machine.
"""

import math
import time
from dataclasses import dataclass

import torch

from efflib.graded import reference
from efflib.latency import threads
from efflib.profiler import Profile


@dataclass(frozen=True)
class Machine:
    """Measured peak compute (GFLOP/s) and memory bandwidth (GB/s)."""

    gflops: float
    bandwidth_gbs: float
    threads: int

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) where memory-bound turns compute-bound."""
        return self.gflops / self.bandwidth_gbs


def _best_time(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_machine(n: int = 1024, mbytes: int = 256, repeats: int = 5,
                    num_threads: int | None = None) -> Machine:
    """Peak GFLOP/s from an n x n float32 matmul; GB/s from copying `mbytes` MB (read + write)."""
    with threads(num_threads):
        a, b = torch.randn(n, n), torch.randn(n, n)
        flops = 2 * n**3 / _best_time(lambda: a @ b, repeats)
        src = torch.empty(mbytes * 10**6 // 4)
        dst = torch.empty_like(src)
        moved = 2 * src.numel() * 4 / _best_time(lambda: dst.copy_(src), repeats)
        used = torch.get_num_threads()
    return Machine(flops / 1e9, moved / 1e9, used)


@dataclass(frozen=True)
class RooflinePoint:
    """One layer on the roofline."""

    name: str
    flops: int
    bytes: int
    seconds: float
    bound: str  # "compute" or "memory"

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else float("inf")


def _bounds(flops: float, nbytes: float, machine: Machine) -> tuple[float, float]:
    """Seconds to compute `flops` at peak, and to move `nbytes` at full bandwidth."""
    return flops / (machine.gflops * 1e9), nbytes / (machine.bandwidth_gbs * 1e9)


@reference("roofline")
def roofline_time(flops: float, nbytes: float, machine: Machine) -> float:
    """Seconds by the roofline model: max(flops / peak, bytes / bandwidth)."""
    return max(_bounds(flops, nbytes, machine))


def roofline_points(profile: Profile, machine: Machine,
                    bytes_per_element: int = 4) -> list[RooflinePoint]:
    """Place every layer with MACs on the roofline (weights, input and output moved once)."""
    points = []
    for r in profile.rows:
        if not r.macs:
            continue
        elements = r.params + _numel(r.input_shape) + _numel(r.output_shape)  # 0 if unknown
        flops, nbytes = 2 * r.macs, elements * bytes_per_element
        compute, memory = _bounds(flops, nbytes, machine)
        points.append(RooflinePoint(r.name, flops, nbytes, max(compute, memory),
                                    "compute" if compute >= memory else "memory"))
    return points


def _numel(shape: tuple) -> int:
    return math.prod(shape) if shape else 0
