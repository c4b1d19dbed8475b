"""autograde.headings: the question-heading grammar that the inventory, the feedback page and
the student's validation share."""

import pytest

from autograde.course import build
from autograde.headings import Heading, headings


@pytest.mark.parametrize("text, expected", [
    ("## Q2. Magnitude pruning (3 points)", [Heading("Q2", "Magnitude pruning", 3)]),
    ("## Q8. Reflection (2 points, graded by hand)", [Heading("Q8", "Reflection", 2)]),
    ("## Q1. One thing (1 point)\n\nSome text", [Heading("Q1", "One thing", 1)]),
    ("##  Q3a. A part   ", [Heading("Q3a", "A part", None)]),
    ("## Q4. Pools (for 8x8 images) (4 points)", [Heading("Q4", "Pools (for 8x8 images)", 4)]),
    ("## Setup\n### Q1. Not a question heading (1 point)\n# Q1. Nor this", []),
    ("intro\n## Q1. A (1 point)\n## Q2. B (2 points)",
     [Heading("Q1", "A", 1), Heading("Q2", "B", 2)]),
])
def test_headings_read_the_question_its_title_and_points(text, expected):
    assert headings(text) == expected


def test_a_heading_is_labelled_without_its_points():
    assert headings("## Q2. Magnitude pruning (3 points)")[0].label == "Q2. Magnitude pruning"


@pytest.mark.parametrize("lab", build.lab_names())
def test_every_lab_numbers_its_questions_in_order_and_gives_their_points(lab):
    found = [h for c in build.source_notebook(lab).cells if c.cell_type == "markdown"
             for h in headings(c.source)]
    assert [h.qid for h in found] == [f"Q{i}" for i in range(1, len(found) + 1)]
    assert all(h.points for h in found), [h for h in found if not h.points]
