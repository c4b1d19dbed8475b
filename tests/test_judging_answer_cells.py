"""autograde.judging.answer_cells: what an answer cell called while it ran, and the check's
refusals applied to it."""

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograde.judging import answer_cells
from autograde.judging.answer_cells import Record, answers, read, refused_in_answer
from autograde.judging.answer_pairs import answers_of
from autograde.judging.values import CheckFailed
from autograde.judging.watch import Recorder, judging, watch
from efflib.shapes import conv_output_size


def recorded(cell, capsys) -> Record:
    """Run `cell` as the kernel runs an answer cell between the executor's side cells."""
    answer_cells.begin("q1_answer")
    try:
        cell()
    finally:
        answer_cells.end("NONCE")
    return read(capsys.readouterr().out, "NONCE")


def test_the_record_holds_torch_numpy_and_efflib_calls(capsys):
    def cell():
        F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2))
        torch.ones(4, 4).unfold(0, 2, 1)
        np.convolve(np.ones(3), np.ones(2))
        conv_output_size(8, 3)

    record = recorded(cell, capsys)
    assert "conv2d" in record.torch and "torch.nn.functional:unfold" not in record.torch
    assert any(n.endswith(" convolve") for n in record.numpy), record.numpy
    assert "conv_output_size" in record.topics
    assert not record.switched_off
    assert sys.getprofile() is None  # the kernel is left as it was
    assert not torch.overrides._get_current_function_mode_stack()


def test_a_cell_that_switches_the_record_off_says_so(capsys):
    def cell():
        sys.setprofile(None)
        torch.overrides._pop_mode()

    record = recorded(cell, capsys)
    assert "profiler" in record.switched_off and "function mode" in record.switched_off


def test_a_missing_doubled_or_forged_record_counts_as_switched_off():
    nonce = "5eed1e55"
    good = f'{nonce} {{"torch": ["conv2d"], "topics": [], "numpy": [], "modules": [], ' \
           '"switched_off": ""}'
    assert read(good, nonce).torch == ["conv2d"]
    # what the cell wrote to the kernel's descriptors may arrive around the record
    assert read(f"\nFORGED LINE\n{good}\nmore", nonce).torch == ["conv2d"]
    for text in ("", f"{good}\n{good}", f"{nonce} {{not json", f'{nonce} {{"torch": []}}'):
        assert read(text, nonce).switched_off == "the record itself", text


def test_answer_cells_are_paired_with_their_test_cells():
    answers_ = ["q3_macs", "q6_numba_kernel", "q6_numba", "q2_a", "q2_b"]
    tests = ["q3_linear_macs_test", "q3_conv_macs_test", "q6_numba_test", "q2_a_test",
             "q2_b_test"]
    assert answers_of("q6_numba_test", answers_, tests) == ["q6_numba"]
    assert answers_of("q3_conv_macs_test", answers_, tests) == ["q3_macs"]
    assert answers_of("q2_a_test", answers_, tests) == ["q2_a"]
    assert answers_of("setup_test", answers_, tests) == []


@pytest.mark.parametrize(("record", "recorder", "said"), [
    (Record(torch=["conv2d", "torch._C._nn:conv2d"]), Recorder(("conv2d",)), "torch's conv2d"),
    (Record(torch=["unfold", "torch.nn.functional:unfold"]), Recorder((F.unfold,)),
     "torch's unfold"),
    (Record(topics=["kmeans"]), Recorder((), topics=("kmeans",)), "reference for kmeans"),
    (Record(numpy=["numpy.lib._stride_tricks_impl sliding_window_view"]),
     Recorder((), numpy=("sliding_window_view",)), "sliding_window_view"),
    (Record(modules=["torch.utils.flop_counter"]),
     Recorder((), modules=("torch.utils.flop_counter",)), "torch.utils.flop_counter"),
    (Record(switched_off="the profiler"), Recorder(("conv2d",)), "switched off the profiler"),
])
def test_a_refused_call_in_the_answer_cell_fails_the_check(record, recorder, said):
    with answers({"q1_answer": record}):
        reason = refused_in_answer(recorder)
    assert said in reason and "q1_answer" in reason


def test_what_the_question_does_not_refuse_passes():
    record = Record(torch=["unfold", "TensorBase:unfold", "einsum"], topics=["profile"],
                    switched_off="the profiler")
    with answers({"q1_answer": record}):
        assert refused_in_answer(Recorder((F.unfold, "conv2d"), topics=("kmeans",))) == \
            "your answer cell q1_answer switched off the profiler, which the grader uses " \
            "to see what an answer calls; remove that code."
        assert refused_in_answer(Recorder(())) == ""  # refuses nothing: nothing to see
    with answers({"q1_answer": Record(torch=["unfold", "TensorBase:unfold"])}):
        assert refused_in_answer(Recorder((F.unfold,))) == ""  # a tensor's unfold is not F's
    assert refused_in_answer(Recorder(("unfold",))) == ""  # no answer cell judged now


@pytest.mark.parametrize("judged", [True, False])
def test_watch_refuses_before_the_check_runs(judged):
    with answers({"q6_einsum": Record(torch=["conv2d"])}), \
            (judging() if judged else torch.no_grad()):
        with pytest.raises(CheckFailed, match="answer cell q6_einsum"), watch(("conv2d",)):
            pass


def test_validate_reads_the_records_the_kernel_kept(capsys):
    recorded(lambda: F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 2, 2)), capsys)
    answer_cells.use(["q1_answer"])
    try:
        assert "q1_answer calls torch's conv2d" in refused_in_answer(Recorder(("conv2d",)))
    finally:
        answer_cells.use([])
    assert refused_in_answer(Recorder(("conv2d",))) == ""
