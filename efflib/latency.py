"""Measure latency (median and spread over repeats, alone or in turns with other models)
and throughput over batch sizes.

Latency is the time one input takes end to end; throughput is inputs per second.
A batch raises throughput and latency together (lecture 02's two designs). On CUDA,
kernels run asynchronously: time with CUDA events and synchronize before reading.
"""

import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn

from efflib.devices import model_device
from efflib.measuring import measuring


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
    def spread(self) -> float:
        """IQR over median: above NOISY the machine was too busy for the number to mean much."""
        return self.iqr / self.median if self.median > 0 else 0.0

    @property
    def throughput(self) -> float:
        """Inputs per second at the median latency."""
        return self.batch / self.median

    def __str__(self) -> str:
        return (f"{self.median * 1e3:.2f} ms median (IQR {self.iqr * 1e3:.2f} ms, "
                f"min {self.minimum * 1e3:.2f}, max {self.maximum * 1e3:.2f}) over "
                f"{self.repeats} runs, batch {self.batch}, {self.threads} threads, {self.device}")


MIN_RUNS = 3
NOISY = 0.25  # IQR / median above which a measurement is flagged


class NoisyMeasurement(UserWarning):
    """A timing whose spread says the machine was busy while it ran."""


def threads_for_load(cpus: int | None = None, loadavg: str | None = None) -> int:
    """Torch threads worth using now: the cores that other runnable processes leave free.

    Two threads on two cores beside busy processes are far slower than one: every
    parallel region waits for its descheduled thread. Reads the count of runnable
    processes from /proc/loadavg (it includes the reader itself); elsewhere, the
    current setting.
    """
    cpus = cpus or os.cpu_count() or 1
    try:
        text = loadavg if loadavg is not None else open("/proc/loadavg").read()
        running = int(text.split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return torch.get_num_threads()
    return max(1, min(cpus, cpus - (running - 1)))


@contextmanager
def busy(n: int):
    """`n` processes spinning on a core each while the block runs: a shared machine, to see
    what other work does to a timing (and to test that a result does not depend on it)."""
    if n < 0:
        raise ValueError(f"busy needs a number of processes >= 0, got {n}")
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


@contextmanager
def one_noise_warning(what: str):
    """Turn the NoisyMeasurement warnings of a block's measurements into one line saying how
    many of `what` (e.g. "layer latencies") were noisy; blocks nest (the outer one sums the
    inner ones' counts), and other warnings pass unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    count = 0
    for w in caught:
        if issubclass(w.category, NoisyMeasurement):
            count += getattr(w.message, "count", 1)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if count:
        summary = NoisyMeasurement(f"{count} {what} varied widely: the machine was busy, so "
                                   "rerun this on a quiet machine before reading much into "
                                   "them")
        summary.count = count
        warnings.warn(summary, stacklevel=3)


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


def _time_cpu(fn, repeats: int, budget_s: float | None = None) -> list[float]:
    """Up to `repeats` timed calls, stopping once `budget_s` is spent (at least MIN_RUNS)."""
    times, begin = [], time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if budget_s is not None and len(times) >= MIN_RUNS and \
                time.perf_counter() - begin > budget_s:
            break
    return times


def time_in_turns(fns: Mapping[str, Callable[[], object]], min_rounds: int, max_rounds: int,
                  budget_s: float | None = None, warm_below_s: float = 0.05,
                  excluded: Callable[[], float] = lambda: 0.0) -> dict[str, list[float]]:
    """Seconds of each fn() over rounds that call every fn once, the order moving by one a
    round, so a load that comes and goes slows them all alike; at least `min_rounds`, more
    while `budget_s` lasts, at most `max_rounds`. After the first round a turn first calls
    fn untimed while its last call took under `warm_below_s`: the others' turns evicted its
    data from the caches, which a quick call would pay for and one timed alone would not (a
    slow call's refill is lost in its own time). `excluded()` is a running total of seconds
    a call spends outside what is timed (efflib.guarded's child process)."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    begin, rounds = time.perf_counter(), 0
    while rounds < min_rounds or (budget_s is not None and rounds < max_rounds
                                  and time.perf_counter() - begin < budget_s):
        turn = rounds % len(names)
        for name in names[turn:] + names[:turn]:
            if times[name] and times[name][-1] < warm_below_s:
                fns[name]()  # caches warmed, untimed
            start, outside = time.perf_counter(), excluded()
            fns[name]()
            times[name].append(time.perf_counter() - start - (excluded() - outside))
        rounds += 1
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
                    num_threads: int | None = None, budget_s: float | None = None,
                    mode: str = "eval") -> Latency:
    """Median and spread of the time `model(x)` takes, after `warmup` untimed calls.

    Runs under no_grad in `mode` (efflib.measuring: the model comes back unchanged)
    on the model's device (`x` is moved there first, outside the
    timing); CUDA is synchronized after warm-up and timed with events. With
    `budget_s`, timing stops once that many seconds are spent (after at least
    MIN_RUNS calls), so a busy machine shortens the sample instead of the wait
    growing. A spread (IQR / median) above NOISY warns: rerun on a quiet machine.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if (home := model_device(model)) is not None:
        x = x.to(home)  # the one input meets the weights: it moves whatever it is
    device = x.device

    def run():
        model(x)

    with measuring(model, mode), torch.no_grad(), threads(num_threads):
        for _ in range(warmup):
            run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            times = _time_cuda(run, repeats, device)
        else:
            times = _time_cpu(run, repeats, budget_s)
        used = torch.get_num_threads()
    return _summary(times, model, x, used)


def _summary(times: list[float], model: nn.Module, x: torch.Tensor, used: int) -> Latency:
    """The Latency of `times`, warning (at the caller's caller) when they spread widely."""
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    result = Latency(statistics.median(times), q[0], q[2], min(times), max(times), len(times),
                     x.shape[0] if x.dim() else 1, used, str(x.device))
    if len(times) >= MIN_RUNS and result.spread > NOISY:
        warnings.warn(f"latency of {type(model).__name__} varied widely (IQR {result.spread:.0%} "
                      "of the median): the machine was busy, so rerun this on a quiet machine "
                      "before reading much into it", NoisyMeasurement, stacklevel=3)
    return result


def measure_in_turns(runs: Mapping[str, tuple[nn.Module, torch.Tensor]], warmup: int = 10,
                     repeats: int = 50, num_threads: int | None = None,
                     budget_s: float | None = None, mode: str = "eval",
                     warm_below_s: float = 0.05) -> dict[str, Latency]:
    """measure_latency of several models, {name: (model, x)}, timed in turns: a round calls
    each once, the order moving by one a round, so a load that comes and goes slows them
    alike and their ratios hold on a busy machine. `repeats` and `budget_s` count rounds.
    A turn first calls the model untimed while its last call took under `warm_below_s`
    (the others' turns evicted its weights from the caches; timed alone, they stay).
    On CUDA, whose events time the GPU, not a busy CPU, each is measured on its own."""
    if not runs:
        raise ValueError("measure_in_turns: give at least one (model, x) to time")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    placed = {}
    for name, (model, x) in runs.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x of {name!r} must be a tensor, got {type(x).__name__}")
        placed[name] = (model, x.to(home) if (home := model_device(model)) is not None else x)
    if any(x.device.type == "cuda" for _, x in placed.values()):
        return {name: measure_latency(model, x, warmup, repeats, num_threads, budget_s, mode)
                for name, (model, x) in placed.items()}
    with ExitStack() as stack:
        for model, _ in placed.values():
            stack.enter_context(measuring(model, mode))
        stack.enter_context(torch.no_grad())
        stack.enter_context(threads(num_threads))
        for _ in range(warmup):
            for model, x in placed.values():
                model(x)
        times = time_in_turns({name: partial(model, x) for name, (model, x) in placed.items()},
                              repeats if budget_s is None else min(MIN_RUNS, repeats), repeats,
                              budget_s, warm_below_s)
        used = torch.get_num_threads()
    return {name: _summary(times[name], model, x, used) for name, (model, x) in placed.items()}


def measure_throughput(model: nn.Module, x: torch.Tensor, batch_sizes: Sequence[int],
                       warmup: int = 3, repeats: int = 10, num_threads: int | None = None,
                       progress: bool = True, budget_s: float | None = None,
                       mode: str = "eval") -> list[Latency]:
    """Latency of `model` at each batch size, built by repeating the single input x[0]."""
    from tqdm.auto import tqdm

    if any(not isinstance(b, int) or b < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be positive ints, got {list(batch_sizes)}")
    results = []
    for b in tqdm(batch_sizes, desc="batch sizes", disable=not progress):
        xb = x[:1].expand(b, *x.shape[1:]).contiguous()  # (b, ...)
        results.append(measure_latency(model, xb, warmup, repeats, num_threads, budget_s,
                                       mode))
    return results
