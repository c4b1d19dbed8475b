"""autograde.grading.outcome: the grader decides on a record of what happened to a notebook,
never on the wording of a message (a reworded message changes nothing it decides)."""

import pytest

from autograde.grading import grader as grading
from autograde.grading import outcome
from autograde.grading.executor import KERNEL_START_FAILED
from autograde.grading.grader import Grader
from autograde.nbgrader_seam.command import NbgraderError

LAB = "lab01_layers"


def test_an_outcome_is_written_whole_read_back_and_cleared(tmp_path):
    record = outcome.Outcome(kernel_died="DeadKernelError: gone", timed_out_cells=[3, 7])
    outcome.write(tmp_path, LAB, "ann", record)
    assert outcome.read(tmp_path, LAB, "ann") == record
    assert outcome.read(tmp_path, LAB, "bob") is None
    outcome.path(tmp_path, LAB, "bob").write_text("{not json")
    assert outcome.read(tmp_path, LAB, "bob") is None  # a torn file counts as none
    outcome.clear(tmp_path, LAB, "ann")
    assert outcome.read(tmp_path, LAB, "ann") is None


@pytest.fixture
def attempts(tmp_path, monkeypatch):
    """Grader.autograde with nbgrader replaced: each attempt runs the next of the
    `runs` the test sets, a function of the attempt number that may write an outcome
    and raise."""
    runs, seen = [], []

    def autograde_in(pool, lab, student, timeout, fallback):
        seen.append(outcome.read(tmp_path, lab, student))  # cleared before each attempt
        runs[len(seen) - 1](lab, student)

    monkeypatch.setattr(grading.workers, "autograde_in", autograde_in)
    monkeypatch.setattr(grading.time, "sleep", lambda s: None)
    monkeypatch.setattr(grading.gradebook, "zero_deleted_tests", lambda *a: [])
    return Grader(LAB, tmp_path, workers=1), runs, seen


def test_a_kernel_that_could_not_start_is_tried_again_whatever_nbgrader_said(attempts,
                                                                             tmp_path):
    grader, runs, seen = attempts

    def no_kernel(lab, student):
        outcome.write(tmp_path, lab, student,
                      outcome.Outcome(kernel_start_error="launcher said: no /dev/shm"))
        raise NbgraderError("autograde failed (words nbgrader chose)")
    runs += [no_kernel, no_kernel]
    status, reason = grader.autograde("ann", None, "")
    assert status == "not-graded" and "launcher said: no /dev/shm" in reason
    assert seen == [None, None]  # each attempt began without the last one's record


def test_the_words_of_a_start_failure_without_its_record_decide_nothing(attempts):
    """Before, the grader searched nbgrader's log for KERNEL_START_FAILED: a notebook that
    printed those words made its failure look like the grader's."""
    grader, runs, _ = attempts

    def failed(lab, student):
        raise NbgraderError(f"the student's cell printed: {KERNEL_START_FAILED} (x)")
    runs.append(failed)
    status, _ = grader.autograde("ann", None, "")
    assert status == "failed"


def test_a_start_failure_then_a_good_run_is_graded(attempts, tmp_path):
    grader, runs, _ = attempts

    def no_kernel(lab, student):
        outcome.write(tmp_path, lab, student, outcome.Outcome(kernel_start_error="busy"))
        raise NbgraderError("x")
    runs += [no_kernel, lambda lab, student: outcome.write(tmp_path, lab, student,
                                                            outcome.Outcome())]
    assert grader.autograde("ann", None, "late") == ("graded", "late")
