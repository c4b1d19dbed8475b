"""The grading process's environment changed for a block, and put back after it.

Only for what crosses a process boundary: the kernel launcher reads its sandbox policy
from the environment it is started with (autograde.sandbox.kernel), and nbgrader starts
it with this process's. Everything else travels as arguments or config.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def temporary_environ(env: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` with `env` set for the block; each name's earlier value (or its absence)
    restored afterwards, also when the block raises."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
