"""Marks efflib functions that are also graded answers, so checks can refuse them.

A lab may ask students to write something efflib already has (Lab 01 asks for
`conv_output_size`, later labs call efflib's). While a check runs a student's
answer it blocks those topics; an answer that calls efflib's copy, however it
was imported or wrapped, then fails with a message saying so.
"""

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)

_blocked: set[str] = set()


class GradedAnswerError(RuntimeError):
    """An answer called efflib's reference for the very thing it was asked to write."""


def reference(topic: str) -> Callable[[F], F]:
    """Register the decorated function as efflib's copy of graded topic `topic`."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            if topic in _blocked:
                raise GradedAnswerError(
                    f"your answer calls efflib's {fn.__module__}.{fn.__qualname__}; this "
                    f"question asks you to write {topic} yourself, so efflib's copy is "
                    "off limits here."
                )
            return fn(*args, **kwargs)

        guarded.__efflib_topic__ = topic
        # functools.wraps links the unguarded function; inspect.unwrap would hand it out
        del guarded.__wrapped__
        return guarded  # type: ignore[return-value]

    return decorate


@contextmanager
def blocked(*topics: str) -> Iterator[None]:
    """Within the block, calling efflib's reference for any of `topics` raises."""
    added = set(topics) - _blocked
    _blocked.update(added)
    try:
        yield
    finally:
        _blocked.difference_update(added)
