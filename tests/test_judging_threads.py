"""autograde.judging.threads: a checked call runs in one thread, the one the watch sees."""

import _thread
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F
import tqdm

from autograde.judging import threads
from autograde.judging.values import CheckFailed
from autograde.judging.watch import watch

REFUSED = ("conv2d",)
KEPT = _thread.start_new_thread  # a starter taken before any watch: the refusal misses it


def in_a_thread(start, out=None):
    """F.conv2d run where the watch is not, started by `start`; its result lands in `out`."""
    out = {} if out is None else out
    start(lambda: out.update(y=F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3))))
    return out


def thread_start(work):
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()


def pool_start(work):
    with ThreadPoolExecutor(1) as pool:
        pool.submit(work).result()


def raw_start(work, starter=None):
    done = threading.Event()
    (starter or _thread.start_new_thread)(lambda: (work(), done.set()), ())
    done.wait(5)


@pytest.mark.parametrize("start", [thread_start, pool_start, raw_start])
def test_a_thread_the_call_starts_is_refused_and_never_runs(start):
    out = {}
    with pytest.raises(CheckFailed, match="started a thread"), watch(forbidden=REFUSED):
        in_a_thread(start, out)
    assert "y" not in out
    assert threading._start_new_thread is _thread.start_new_thread  # put back
    assert in_a_thread(start)["y"].item() == 9  # and threads start again after the watch


def test_without_the_rule_the_thread_escapes_the_refusal(monkeypatch):
    """Why the rule: torch's modes are per thread, so F.conv2d in a thread is not refused."""
    monkeypatch.setattr(threads, "STARTERS", ())
    monkeypatch.setattr(threads, "next_thread_id", itertools.count().__next__)
    with watch(forbidden=REFUSED):
        assert in_a_thread(thread_start)["y"].item() == 9
    with pytest.raises(CheckFailed, match="conv2d"), watch(forbidden=REFUSED):
        F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3))


def test_a_thread_started_past_the_refusal_is_still_seen():
    """A starter kept from before the call starts its thread unrefused; the thread state it
    needed to run Python gives it away, even once it is gone."""
    out = {}
    with pytest.raises(CheckFailed, match="1 started out of sight"), watch(forbidden=REFUSED):
        in_a_thread(lambda work: raw_start(work, KEPT), out)
    assert out["y"].item() == 9  # it ran, and the call does not count


def test_the_thread_state_probe_counts_threads():
    first = threads.next_thread_id()
    raw_start(lambda: None)
    thread_start(lambda: None)
    assert threads.next_thread_id() - first - 1 == 2


def test_a_pool_started_before_the_call_is_refused_until_shut_down():
    pool = ThreadPoolExecutor(1, thread_name_prefix="my_pool")
    pool.submit(time.sleep, 0).result()  # its worker now waits for work
    try:
        with pytest.raises(CheckFailed, match=r"threads of its own running \(my_pool"), \
                watch(forbidden=REFUSED):
            pool.submit(F.conv2d, torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3)).result()
    finally:
        pool.shutdown()
    with watch(forbidden=REFUSED):
        pass


def test_a_thread_that_claims_to_be_the_kernels_but_runs_notebook_code_is_refused():
    """A target whose module says ipykernel, defined in the notebook (its globals' name is
    __main__), waiting for work: the notebook's."""
    namespace = {"__name__": "__main__"}
    exec("def serve(event):\n    event.wait(10)\n", namespace)  # noqa: S102 - a notebook cell
    serve = namespace["serve"]
    serve.__module__ = "ipykernel.iostream"
    event = threading.Event()
    worker = threading.Thread(target=serve, args=(event,), name="disguised")
    worker.start()
    try:
        with pytest.raises(CheckFailed, match="disguised"), watch():
            pass
    finally:
        event.set()
        worker.join()


def test_the_kernels_own_threads_do_not_count():
    """A thread whose work is ipykernel's (here: a function whose module and globals are a
    kernel module's) may run during the call."""
    namespace = {"__name__": "ipykernel.heartbeat"}
    exec("def beat(event):\n    event.wait(10)\n", namespace)  # noqa: S102 - as ipykernel's
    event = threading.Event()
    worker = threading.Thread(target=namespace["beat"], args=(event,), name="Heartbeat")
    worker.start()
    try:
        assert "Heartbeat" not in threads.notebook_threads()
        with watch(forbidden=REFUSED):
            pass
    finally:
        event.set()
        worker.join()


def test_a_thread_that_claims_to_be_tqdms_monitor_is_refused():
    """The monitor is allowed by its class, not by a module name a target can claim."""
    namespace = {"__name__": "tqdm._monitor"}
    exec("def run():\n    pass\n", namespace)  # noqa: S102 - a target in tqdm's clothes
    with pytest.raises(CheckFailed, match="started a thread"), watch():
        thread_start(namespace["run"])


def test_tqdm_may_start_its_monitor_during_the_call(monkeypatch):
    """A progress bar in the student's function starts tqdm's monitor thread: allowed."""
    if tqdm.tqdm.monitor is not None:
        tqdm.tqdm.monitor.exit()
    monkeypatch.setattr(tqdm.tqdm, "monitor", None)
    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 10)
    with watch(forbidden=REFUSED):
        for _ in tqdm.tqdm(range(3), disable=False):
            pass
    assert tqdm.tqdm.monitor is not None and tqdm.tqdm.monitor.is_alive()
    tqdm.tqdm.monitor.exit()
    tqdm.tqdm.monitor = None
