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
_records: list[set[str]] = []  # open records of the topics called (autograde.judging.answer_cells)


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
            for record in _records:
                record.add(topic)
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


def start_record() -> set[str]:
    """From now on, the topics whose reference is called are added to the set returned."""
    record: set[str] = set()
    _records.append(record)
    return record


def stop_record(record: set[str]) -> None:
    """Stop adding to `record` (a no-op if it was stopped already)."""
    if any(r is record for r in _records):
        _records[:] = [r for r in _records if r is not record]
