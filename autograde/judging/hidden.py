"""Hidden cases: drawn from a key only the grader holds, and failed without the answer.

Visible checks draw their cases from seeds anyone can read in the checks' source.
Hidden checks draw theirs from the key the grader installs while it grades a
notebook (`keyed`), which `autograde.grading.secret` derives from the course's
secret; the grader's images for "test accuracy" questions come with it. No key is
ever installed in a student's kernel: hidden checks run there draw from a random
key of that process, unrelated to the grader's, so running them at home tells a
student nothing about the cases that grade them.

While a hidden check runs (`hidden_case`), the check writer's helpers leave expected
values out of failure messages (`autograde.checks.api`): feedback goes back to the
student, who may hand in again.
"""

import contextlib
import contextvars
import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import torch

_PROCESS_KEY = secrets.token_bytes(32)  # this process's own: unrelated to any grader's
_hidden = contextvars.ContextVar("efflab_hidden_case", default=False)


@dataclass(frozen=True)
class GradingKey:
    """What the grader holds for one lab: the key hidden cases are drawn from and the images
    (never given to students) that "test accuracy" questions are judged on."""

    key: bytes
    images: torch.Tensor | None = None  # (N, 1, 8, 8), normalised as efflib.data.digits
    labels: torch.Tensor | None = None  # (N,)

    def __repr__(self) -> str:  # never print the key
        return f"GradingKey(<{len(self.key)} bytes>, {self.count()} images)"

    def count(self) -> int:
        return 0 if self.labels is None else len(self.labels)


_installed: GradingKey | None = None


@contextlib.contextmanager
def keyed(grading_key: GradingKey) -> Iterator[None]:
    """Within the block, hidden cases and held-out images come from `grading_key`."""
    global _installed
    if not isinstance(grading_key, GradingKey) or len(grading_key.key) < 16:
        raise ValueError("a grading key needs at least 16 bytes of secret")
    previous, _installed = _installed, grading_key
    try:
        yield
    finally:
        _installed = previous


def installed() -> GradingKey | None:
    """The grader's key while it grades; None in a student's kernel."""
    return _installed


def seed(salt: str) -> str:
    """The seed of a hidden check's cases: the grader's key (else this process's) and salt."""
    key = _installed.key if _installed is not None else _PROCESS_KEY
    return hmac.new(key, f"hidden:{salt}".encode(), hashlib.sha256).hexdigest()


@contextlib.contextmanager
def hidden_case(on: bool = True) -> Iterator[None]:
    """Within the block a check runs hidden cases: failures leave expected values out."""
    token = _hidden.set(bool(on))
    try:
        yield
    finally:
        _hidden.reset(token)


def in_hidden_case() -> bool:
    return _hidden.get()
