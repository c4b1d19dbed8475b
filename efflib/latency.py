"""Measure latency (median and spread over repeats) and throughput over batch sizes.

Latency is the time one input takes end to end; throughput is inputs per second.
A batch raises throughput and latency together (lecture 02's two designs). On CUDA,
kernels run asynchronously: time with CUDA events and synchronize before reading.
"""

import os
import statistics
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn


def fast_mode() -> bool:
    """True while nbgrader executes a notebook: measurements shrink to keep grading quick."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


@dataclass(frozen=True)
class Latency:
    """Seconds per call of one batch: median, spread and the conditions they were taken in."""

    median: float
    q25: float
    q75: float
    minimum: float
    maximum: float
    repeats: int
    batch: int
    threads: int
    device: str

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25

    @property
    def throughput(self) -> float:
        """Inputs per second at the median latency."""
        return self.batch / self.median

    def __str__(self) -> str:
        return (f"{self.median * 1e3:.2f} ms median (IQR {self.iqr * 1e3:.2f} ms, "
                f"min {self.minimum * 1e3:.2f}, max {self.maximum * 1e3:.2f}) over "
                f"{self.repeats} runs, batch {self.batch}, {self.threads} threads, {self.device}")


@contextmanager
def threads(n: int | None):
    """Run the block with torch using `n` intra-op threads (None: leave as is)."""
    before = torch.get_num_threads()
    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be at least 1, got {n}")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _time_cpu(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _time_cuda(fn, repeats: int, device: torch.device) -> list[float]:
    """Time each call with CUDA events recorded on the current stream (GPU time, ms -> s)."""
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(repeats)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def measure_latency(model: nn.Module, x: torch.Tensor, warmup: int = 10, repeats: int = 50,
                    num_threads: int | None = None) -> Latency:
    """Median and spread of the time `model(x)` takes, after `warmup` untimed calls.

    Runs under no_grad on whatever device the model and `x` are on; CUDA is
    synchronized after warm-up and timed with events.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    device = x.device
    on = {p.device for p in model.parameters()} - {device}
    if on:
        raise ValueError(f"model is on {sorted(map(str, on))} but x is on {device}: move one")

    def run():
        model(x)

    with torch.no_grad(), threads(num_threads):
        for _ in range(warmup):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            times = _time_cuda(run, repeats, device)
        else:
            times = _time_cpu(run, repeats)
        used = torch.get_num_threads()
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return Latency(statistics.median(times), q[0], q[2], min(times), max(times), repeats,
                   x.shape[0] if x.dim() else 1, used, str(device))


def measure_throughput(model: nn.Module, x: torch.Tensor, batch_sizes: Sequence[int],
                       warmup: int = 3, repeats: int = 10,
                       num_threads: int | None = None, progress: bool = True) -> list[Latency]:
    """Latency of `model` at each batch size, built by repeating the single input x[0]."""
    from tqdm.auto import tqdm

    if any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be positive ints, got {list(batch_sizes)}")
    results = []
    for b in tqdm(batch_sizes, desc="batch sizes", disable=not progress):
        xb = x[:1].expand(b, *x.shape[1:]).contiguous()  # (b, ...)
        results.append(measure_latency(model, xb, warmup, repeats, num_threads))
    return results
