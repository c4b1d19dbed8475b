"""Which answer cells a test cell judges, and the code the executor runs around them in the
kernel (`judging.answer_cells` holds the record itself). Free of torch: the Validate
extension loads it into the Jupyter server."""

import re
from collections.abc import Iterable

RECORDER = "autograde.judging.answer_cells"  # the module that records in the kernel
_QUESTION = re.compile(r"^(q\d+[a-z]?)_")


def begin_code(grade_id: str) -> str:
    return f"__import__({RECORDER!r}, fromlist=['begin']).begin({grade_id!r})"


def end_code(nonce: str) -> str:
    return f"__import__({RECORDER!r}, fromlist=['end']).end({nonce!r})"


def use_code(answer_ids: list[str]) -> str:
    return f"__import__({RECORDER!r}, fromlist=['use']).use({list(answer_ids)!r})"


def answers_of(test_id: str, answer_ids: Iterable[str], test_ids: Iterable[str]) -> list[str]:
    """The answer cells a test cell judges: `X` for `X_test`; otherwise the answer cells of
    its question (`qN_`) that have no test cell of their own (`q3_macs` for
    `q3_linear_macs_test` and `q3_conv_macs_test`)."""
    answer_ids, test_ids = list(answer_ids), set(test_ids)
    own = test_id.removesuffix("_test")
    if own in answer_ids:
        return [own]
    question = _QUESTION.match(test_id)
    if question is None:
        return []
    return [a for a in answer_ids if a.startswith(question.group(0))
            and f"{a}_test" not in test_ids]
