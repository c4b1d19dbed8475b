"""efflib.latency and efflib.roofline on CPU (the CUDA branch is exercised on a GPU machine)."""

import time
import warnings

import pytest
import torch
import torch.nn as nn

import efflib
from efflib.latency import (
    Latency,
    NoisyMeasurement,
    busy,
    measure_in_turns,
    measure_latency,
    measure_throughput,
    one_noise_warning,
    threads,
)
from efflib.profiler import profile
from efflib.roofline import Machine, measure_machine, roofline_points, roofline_time


class Sleepy(nn.Module):
    """Takes a known time per call, so the median can be checked."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_latency_median_and_spread_of_a_known_delay(clock):
    lat = measure_latency(Sleepy(0.004), torch.zeros(2, 3), warmup=1, repeats=7)
    assert lat.median == pytest.approx(0.004) and lat.spread == pytest.approx(0.0)
    assert lat.minimum <= lat.q25 <= lat.median <= lat.q75 <= lat.maximum
    assert (lat.repeats, lat.batch, lat.device) == (7, 2, "cpu")
    assert lat.throughput == pytest.approx(2 / lat.median)
    assert "ms median" in str(lat)


def test_thread_count_is_set_recorded_and_restored():
    before = torch.get_num_threads()
    lat = measure_latency(nn.Linear(4, 4), torch.randn(1, 4), 1, 3, num_threads=1)
    assert lat.threads == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with threads(0):
            pass


def test_bad_inputs_named():
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(nn.Linear(2, 2), torch.randn(1, 2), repeats=0)
    with pytest.raises(TypeError, match="tensor"):
        measure_latency(nn.Linear(2, 2), [1.0, 2.0])
    split = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, device="meta"))
    with pytest.raises(ValueError, match="several devices"):
        measure_latency(split, torch.randn(1, 2))
    with pytest.raises(ValueError, match="batch sizes"):
        measure_throughput(nn.Linear(2, 2), torch.randn(1, 2), [1, 0])


def test_throughput_builds_each_batch_from_one_input():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return x

    res = measure_throughput(Spy(), torch.randn(1, 3), [1, 4], warmup=0, repeats=2,
                             progress=False)
    assert [r.batch for r in res] == [1, 4]
    assert seen == [1, 1, 4, 4]
    assert all(isinstance(r, Latency) for r in res)


def test_roofline_time_takes_the_larger_bound():
    m = Machine(gflops=100.0, bandwidth_gbs=10.0, threads=1)
    assert m.ridge == 10.0
    assert roofline_time(1e9, 1e6, m) == pytest.approx(0.01)     # compute-bound
    assert roofline_time(1e6, 1e9, m) == pytest.approx(0.1)      # memory-bound


def test_roofline_points_per_layer():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 6 * 6, 10, bias=False))
    pts = roofline_points(profile(model, torch.randn(1, 3, 8, 8)), Machine(100.0, 10.0, 1))
    assert [p.name for p in pts] == ["0", "3"]
    conv, fc = pts
    assert conv.flops == 2 * 8 * 36 * 27
    assert conv.bytes == 4 * (8 * 27 + 3 * 64 + 8 * 36)
    assert fc.intensity < conv.intensity  # a batch-1 linear layer reuses nothing
    assert fc.bound == "memory"


def test_measured_machine_is_plausible():
    m = measure_machine(n=256, mbytes=16, repeats=2)
    assert m.gflops > 0.5 and m.bandwidth_gbs > 0.5
    assert m.threads == torch.get_num_threads()


def test_cuda_timing_uses_events_and_one_synchronize(monkeypatch):
    """The CUDA branch, with torch.cuda's Event and synchronize replaced by fakes (no GPU here)."""
    import efflib.latency as L

    log = []

    class FakeEvent:
        clock = 0.0

        def __init__(self, enable_timing=False):
            assert enable_timing
            self.t = None

        def record(self):
            FakeEvent.clock += 2.5  # each record is 2.5 ms after the previous one
            self.t = FakeEvent.clock
            log.append("record")

        def elapsed_time(self, end):
            assert log[-1] == "sync", "read before synchronize"
            return end.t - self.t

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: log.append("sync"))
    times = L._time_cuda(lambda: log.append("call"), 3, torch.device("cuda"))
    assert log == ["record", "call", "record"] * 3 + ["sync"]
    assert times == [0.0025] * 3  # milliseconds -> seconds


def test_inputs_follow_the_model_to_its_device():
    """A lab trains on CUDA when there is one but builds example batches on the CPU: the
    measuring functions move the input (here a meta-device model stands in for CUDA; before
    this, both raised on the mismatch)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()).to("meta")
    x = torch.randn(2, 3, 10, 10)
    lat = measure_latency(model, x, warmup=0, repeats=3)
    assert lat.device == "meta" and lat.repeats == 3
    prof = efflib.profile(model, x)
    assert prof.macs == 8 * 3 * 9 * 8 * 8 * 2
    assert efflib.profile(nn.ReLU(), x).activations > 0  # no parameters: left where it is


class Varying(nn.Module):
    """A model whose calls take `times` seconds in turn."""

    def __init__(self, times):
        super().__init__()
        self.times, self.calls = list(times), 0

    def forward(self, x):
        time.sleep(self.times[self.calls % len(self.times)])
        self.calls += 1
        return x


def test_timing_stops_when_its_budget_is_spent(clock):
    model = Varying([0.02])
    lat = measure_latency(model, torch.zeros(1), warmup=0, repeats=100, budget_s=0.1)
    assert lat.repeats == model.calls and lat.repeats in (5, 6)  # 6 when 5 x 0.02 < 0.1
    slow = Varying([0.2])
    assert measure_latency(slow, torch.zeros(1), warmup=0, repeats=100,
                           budget_s=0.01).repeats == 3  # never fewer than three


class Loaded(nn.Module):
    """Takes `ms` times the shared load, which is heavy every other round of three calls."""

    def __init__(self, name: str, ms: float, log: list):
        super().__init__()
        self.name, self.ms, self.log = name, ms, log

    def forward(self, x):
        load = 6 if (len(self.log) // 3) % 2 else 1
        self.log.append(self.name)
        time.sleep(self.ms * load / 1e3)
        return x


def test_models_timed_in_turns_keep_their_ratio_under_a_load_that_comes_and_goes(clock):
    log = []
    models = {n: Loaded(n, ms, log) for n, ms in (("a", 2), ("b", 4), ("c", 8))}
    models["a"].eval()  # b and c stay in training mode, as made
    lat = measure_in_turns({n: (m, torch.zeros(2)) for n, m in models.items()}, warmup=1,
                           repeats=4, warm_below_s=0.0)
    assert log == list("abc" "abc" "bca" "cab" "abc")  # a warm-up round, then turns
    # each saw two light and two heavy turns: the median of (1, 6, 1, 6) x its own time
    assert [lat[n].median for n in "abc"] == pytest.approx([0.007, 0.014, 0.028])
    assert all(v.repeats == 4 and v.batch == 2 for v in lat.values())
    assert models["b"].training and not models["a"].training  # each back in its mode
    with pytest.raises(ValueError, match="at least one"):
        measure_in_turns({})
    with pytest.raises(TypeError, match="x of 'a' must be a tensor"):
        measure_in_turns({"a": (models["a"], [0.0])})


def test_a_quick_model_is_warmed_before_its_timed_turn_and_a_slow_one_is_not(clock):
    log = []
    quick, slow = Loaded("q", 0, log), Loaded("s", 30, log)
    lat = measure_in_turns({"q": (quick, torch.zeros(1)), "s": (slow, torch.zeros(1))},
                           warmup=0, repeats=3, warm_below_s=0.02)
    assert log == list("qs" "sqq" "qqs") and lat["q"].repeats == lat["s"].repeats == 3


def test_turns_stop_when_their_budget_is_spent(clock):
    slow = Varying([0.02])
    lat = measure_in_turns({"slow": (slow, torch.zeros(1)), "fast": (Varying([0.001]),
                                                                      torch.zeros(1))},
                           warmup=0, repeats=100, budget_s=0.1)
    # a round is 0.042 s (each one warmed, as both are quicker than warm_below_s): the
    # third ends past the budget
    assert lat["slow"].repeats == lat["fast"].repeats == 3


def test_a_busy_machine_is_flagged(clock):
    with pytest.warns(NoisyMeasurement, match="rerun"):
        lat = measure_latency(Varying([0.001, 0.02, 0.001, 0.02]), torch.zeros(1), warmup=0,
                              repeats=8)
    assert lat.spread == pytest.approx(0.019 / 0.0105)  # IQR over the median
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoisyMeasurement)
        measure_latency(Varying([0.01]), torch.zeros(1), warmup=0, repeats=5)  # steady: silent


def test_many_noisy_measurements_make_one_warning():
    """Lab 07's table cell printed 15-20 warnings; a block of measurements gives one line,
    and a warning of another kind still passes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with one_noise_warning("latencies in all"):
            with one_noise_warning("of the 3 inner latencies"):
                for _ in range(3):
                    measure_latency(Varying([0.001, 0.02]), torch.zeros(1), warmup=0,
                                    repeats=8)
            measure_latency(Varying([0.001, 0.02]), torch.zeros(1), warmup=0, repeats=8)
            warnings.warn("something else", UserWarning, stacklevel=1)
    noisy = [w for w in caught if w.category is NoisyMeasurement]
    assert len(noisy) == 1 and "4 latencies in all varied widely" in str(noisy[0].message)
    assert [str(w.message) for w in caught if w.category is UserWarning] == ["something else"]


def test_busy_spins_its_processes_for_the_block_only():
    with busy(2) as procs:
        time.sleep(0.3)
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        cpu = [float(open(f"/proc/{p.pid}/stat").read().split()[13]) for p in procs]
        assert all(ticks > 0 for ticks in cpu), cpu  # spinning, not sleeping
    assert all(p.returncode is not None for p in procs)
    with pytest.raises(ValueError, match="number of processes"):
        with busy(-1):
            pass


def test_threads_for_load_leaves_the_busy_cores_alone():
    """From /proc/loadavg's count of runnable processes (the reader is one of them)."""
    from efflib.latency import threads_for_load

    assert threads_for_load(2, "0.50 0.40 0.30 1/300 12345") == 2   # only us: both cores
    assert threads_for_load(2, "2.10 2.00 2.00 3/300 12345") == 1   # two others spinning
    assert threads_for_load(2, "9.00 9.00 9.00 12/300 12345") == 1  # never fewer than one
    assert threads_for_load(8, "1.00 1.00 1.00 3/300 12345") == 6
    assert threads_for_load(2, "garbled") == torch.get_num_threads()
