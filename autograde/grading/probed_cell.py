"""After a test cell run in the student's kernel: the integrity probe, whose verdict decides
whether that cell's pass counts.

The probe (`judging.integrity`) runs in the kernel with a fresh nonce and prints one
line; a missing, wrong or doubled answer counts as tampering, and from then on every
kernel-run test cell of the notebook fails with IntegrityError.
"""

import secrets

from autograde.grading.output_budget import OutputBudget
from autograde.judging import integrity
from autograde.nbgrader_glue import error_output, side_cell

PROBE_OUTPUT_LIMIT = 100_000  # the probe's verdict gets through a spent output budget


class IntegrityProbe:
    """Mixin of `SandboxedExecute` (before nbgrader's Execute in its bases)."""

    def _check_integrity(self, cell, index) -> None:
        """After a kernel-run test cell: a tampered kernel's pass does not count."""
        if not self._tampered:
            try:
                verdict = self._probe(index)
            except Exception as e:  # noqa: BLE001 - a probe that cannot run is suspicious
                self._tampered = f"the integrity probe failed ({type(e).__name__})"
            else:
                if verdict != "clean":
                    gid = cell.metadata["nbgrader"]["grade_id"]
                    self._tampered = (f"tampering detected after {gid}: "
                                      f"{verdict[:300] or 'no answer from the probe'}")
        if self._tampered:
            cell.outputs = [error_output("IntegrityError", self._tampered)]

    def _probe(self, index: int) -> str:
        """Run the integrity probe in the kernel; its verdict ("clean" or what it found)."""
        nonce = secrets.token_hex(16)
        text = self._side_cell(integrity.code(repr(nonce)), index)
        lines = [ln for ln in text.splitlines() if ln.startswith(nonce)]
        if len(lines) > 1:  # a hook that read the nonce answered too: forged
            return "more than one answer to the probe"
        return lines[0][len(nonce):].strip() if lines else ""

    def _side_cell(self, source: str, index: int) -> str:
        """Run `source` in the kernel as a cell of the grader's at `index`; what it printed
        (it gets through a spent output budget)."""
        self._probe_budget = OutputBudget(PROBE_OUTPUT_LIMIT)
        try:
            return side_cell(super().preprocess_cell, self.nb, self.resources, source, index)
        finally:
            self._probe_budget = None
