"""autograde.judging.watch: refusing a library's modules by what runs, not by name."""

import importlib
import sys
import threading

import pytest
import torch

from autograde.judging import threads
from autograde.judging.answer_cells import Record, answers
from autograde.judging.values import CheckFailed
from autograde.judging.watch import watch


def test_a_refused_module_is_refused_under_any_name():
    from torch._refs.nn.functional import gelu as my_gelu
    x = torch.linspace(-3, 3, 7)
    with pytest.raises(CheckFailed, match="torch._refs"), watch(modules=("torch._refs",)):
        my_gelu(x)
    with watch(modules=("torch._refs",)):
        torch.nn.functional.gelu(x)  # torch's eager kernel runs no Python of torch._refs


def test_a_refused_module_is_refused_in_a_thread_a_library_starts(monkeypatch):
    """sys.setprofile is per thread: a thread that starts during the call (one a library may
    start, as tqdm its monitor; the call's own are refused, tests/test_judging_threads.py)
    runs under the hook all the same."""
    from torch._refs.nn.functional import gelu as my_gelu
    x = torch.linspace(-3, 3, 7)
    monkeypatch.setattr(threads, "LIBRARY_THREADS", (threading.Thread,))  # as tqdm's is

    def in_a_thread():
        worker = threading.Thread(target=my_gelu, args=(x,))
        worker.start()
        worker.join()
    with pytest.raises(CheckFailed, match="torch._refs"), watch(modules=("torch._refs",)):
        in_a_thread()
    in_a_thread()  # the hook is gone once the watch is: nothing is refused
    assert threading.getprofile() is None


def test_the_import_time_code_of_a_refused_module_does_not_count(tmp_path, monkeypatch):
    (tmp_path / "efflab_lazy_probe.py").write_text(
        "def table():\n    return {1: 2}\n\nTABLE = table()  # runs when imported\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with watch(modules=("efflab_lazy_probe",)):
        probe = importlib.import_module("efflab_lazy_probe")  # as torch imports lazily
    with pytest.raises(CheckFailed, match="efflab_lazy_probe"), \
            watch(modules=("efflab_lazy_probe",)):
        probe.table()
    sys.modules.pop("efflab_lazy_probe", None)


def test_modules_refused_in_the_call_only_are_not_applied_to_answer_cells():
    record = Record(modules=["torch._meta_registrations"])  # a model run on the meta device
    with answers({"q8_answer": record}):
        with watch(modules=("torch._meta_registrations",),
                   call_only=("torch._meta_registrations",)):
            pass
        with pytest.raises(CheckFailed, match="answer cell q8_answer"), \
                watch(modules=("torch._meta_registrations",)):
            pass
