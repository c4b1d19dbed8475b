"""Every near miss of a Labs 01-04 formula (tests/near_misses.py) fails its question's
visible check, so the student sees it before grading; the solution passes the same check.
So does every answer borrowed from a library under another name (near_misses.BORROWED)."""

import importlib

import pytest
from conftest import lab_solution
from lazy import defined
from near_misses import ALL, BORROWED

from autograde.checks.api import CheckFailed
from efflib.graded import GradedAnswerError


def _id(miss):
    return f"{miss.lab[:5]}-{miss.name}-{miss.mistake.replace(' ', '_')}"


@pytest.mark.parametrize("miss", ALL + BORROWED, ids=_id)
def test_the_visible_check_fails_a_near_miss(miss):
    checks = importlib.import_module(f"autograde.checks.{miss.lab}")
    solution = lab_solution(miss.lab)
    miss.run(checks, solution, getattr(solution, miss.name))  # the honest answer passes
    wrong = defined(solution, miss.code, miss.name)
    with pytest.raises((CheckFailed, GradedAnswerError)):
        miss.run(checks, solution, wrong)

