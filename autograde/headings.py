"""The labs' question headings, `## Q2. Magnitude pruning (3 points)`, read one way.

The inventory counts a lab's points from them; the feedback page and the student's
validation label each graded cell with the question above it.
"""

import re
from dataclasses import dataclass

_HEADING = re.compile(r"^##\s+(Q\d+[a-z]?)\.\s+(.*?)\s*(?:\((\d+) points?\b[^)]*\))?\s*$",
                      re.M)


@dataclass(frozen=True)
class Heading:
    """One question heading: "Q2", "Magnitude pruning", 3 (None where it names no points)."""

    qid: str
    title: str
    points: int | None

    @property
    def label(self) -> str:
        """The question as the pages name it: "Q2. Magnitude pruning"."""
        return f"{self.qid}. {self.title}"


def headings(markdown: str) -> list[Heading]:
    """The question headings of a markdown cell, in order."""
    return [Heading(q, title, int(p) if p else None)
            for q, title, p in _HEADING.findall(markdown)]
