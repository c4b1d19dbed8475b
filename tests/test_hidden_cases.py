"""Hidden cases come from the grader's key: a student cannot draw them at home, a lookup
table of what they can draw fails, and a hidden failure never shows the expected value."""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import lab_solution
from lookup import expected_tokens, hidden_calls, shown_inputs
from memorise import _MISSED, _memorise, _wrong

from autograde.checks.api import CheckFailed, rng
from autograde.course import build
from autograde.judging.hidden import GradingKey, keyed

LABS = build.lab_names()
HOME = GradingKey(b"a student's own kernel: any key but the grader's")
GRADER = GradingKey(b"the course's key, which only the grader holds")
# answers that are modules: a lookup of modules is the modules themselves, nothing to game
MODULES = {"check_vgg_stage", "check_bottleneck", "check_inverted_residual",
           "check_factorised", "check_prune_channels"}


def test_the_same_key_draws_the_same_cases_and_another_key_others():
    with keyed(GRADER):
        first = [rng(True, "conv").random() for _ in range(3)]
        again = [rng(True, "conv").random() for _ in range(3)]
    with keyed(HOME):
        other = [rng(True, "conv").random() for _ in range(3)]
    assert first == again and first != other
    with keyed(GRADER):
        visible = rng(False, "conv").random()
    assert visible == rng(False, "conv").random(), "visible cases need no key"


def test_a_students_kernel_has_no_key_and_draws_cases_of_its_own():
    """No key is installed outside the grader: hidden checks run at home draw from the
    process's own random key, unrelated to the grader's and different every time."""
    code = ("from autograde.judging import hidden; from autograde.checks.api import rng; "
            "print(hidden.installed() is None, rng(True, 'conv').random())")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][0] == runs[1][0] == "True"
    assert runs[0][1] != runs[1][1]
    with keyed(GRADER):
        assert str(rng(True, "conv").random()) not in {runs[0][1], runs[1][1]}


def test_a_grading_key_is_never_printed():
    assert "cases" not in repr(GRADER) and GRADER.key.decode() not in repr(GRADER)
    with pytest.raises(ValueError, match="16 bytes"):
        with keyed(GradingKey(b"short")):
            pass


@pytest.mark.parametrize("lab", LABS)
def test_a_lookup_made_at_home_fails_the_graders_hidden_cases(lab):
    """The lookup attack: with the student's own key (what fixed seeds gave everyone) the
    lookup passes every hidden check; with the grader's it fails, and its message gives
    no expected value away."""
    namespace = lab_solution(lab)
    module = importlib.import_module(f"autograde.checks.{lab}")
    calls = [c for c in hidden_calls(lab) if c.check not in MODULES]
    assert calls, f"{lab} has no hidden checks of functions"
    for call in calls:
        check = getattr(module, call.check)
        with keyed(HOME):
            lookups = _memorise(check, *[getattr(namespace, a) for a in call.args],
                                **call.kwargs)
            check(*lookups, hidden=True, **call.kwargs)  # the key it was made with: passes
        _MISSED.clear()
        with keyed(GRADER), pytest.raises(CheckFailed, match=".") as failed:
            check(*lookups, hidden=True, **call.kwargs)
        message = str(failed.value)
        assert _MISSED, f"{call.source}: failed before any lookup missed: {message}"
        inputs, answer = _MISSED[-1]
        assert not re.search(r"\bexpected:?\s+[-\d(\[]", message), (call.source, message)
        public = Path(module.__file__).read_text()  # numbers written in the checks' source
        shown = shown_inputs(inputs)  # the inputs and what came back may be shown
        tokens = expected_tokens(answer, shown) - expected_tokens(_wrong(answer), shown)
        leaked = [t for t in tokens
                  if re.search(rf"(?<![\w.]){re.escape(t)}(?![\w])", message)
                  and t not in public]
        assert not leaked, f"{call.source}: the hidden failure shows {leaked}: {message}"
