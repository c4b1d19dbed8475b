"""Around each answer cell: a record of what it called, kept here for the checks of its
question, so that a refusal covers the whole answer (`judging.answer_cells`).

A cell of the grader's starts the record in the kernel before the answer cell runs;
another closes it and prints it after a fresh nonce. A missing, doubled or malformed
record counts as one the answer cell switched off.
"""

import secrets

from autograde.judging import answer_cells, answer_pairs
from autograde.nbgrader_seam.cells import answer_and_test_ids, grade_id


class AnswerRecords:
    """Mixin of `SandboxedExecute`, before `IntegrityProbe` (whose side cells it runs)."""

    def _start_records(self, nb) -> None:
        self._records: dict[str, answer_cells.Record] = {}
        self._answer_ids, self._test_ids = answer_and_test_ids(nb)

    def _recorded(self, cell, resources, index):
        """Run an answer cell inside a record of what it calls."""
        gid, nonce = grade_id(cell), secrets.token_hex(16)
        self._side_cell(answer_pairs.begin_code(gid), index)
        cell, out = super().preprocess_cell(cell, resources, index)
        self._records[gid] = answer_cells.read(
            self._side_cell(answer_pairs.end_code(nonce), index), nonce)
        return cell, out

    def _answers_judged(self, test_cell):
        """While `test_cell` is judged: its answer cells' records apply to its checks."""
        judged = answer_pairs.answers_of(grade_id(test_cell), self._answer_ids, self._test_ids)
        return answer_cells.answers({a: self._records[a] for a in judged if a in self._records})
