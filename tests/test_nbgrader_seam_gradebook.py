"""autograde.nbgrader_seam.gradebook: students in the course's gradebook."""

from datetime import datetime

import pytest

from autograde.nbgrader_seam import command, gradebook


def test_students_are_named_after_their_submission_and_keep_a_name_given_later(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", command.env()["PATH"])  # nbgrader makes the gradebook with alembic
    db = f"sqlite:///{tmp_path}/gb.db"
    gradebook.register_students(db, ["ann", "bob"])
    with gradebook.connect(db) as gb:
        assert (gb.find_student("ann").last_name, gb.find_student("ann").first_name) == \
            ("ann", "")
        gb.update_or_create_student("bob", last_name="Lee", first_name="Bob")  # formgrader
    gradebook.register_students(db, ["ann", "bob", "cid"])
    with gradebook.connect(db) as gb:
        assert gb.find_student("bob").last_name == "Lee"
        assert gb.find_student("cid").last_name == "cid"


def test_a_submission_after_the_due_date_is_late_by_its_exchange_time(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", command.env()["PATH"])
    db = f"sqlite:///{tmp_path}/gb.db"
    gradebook.register_students(db, ["ann", "bob", "cy"])
    with gradebook.connect(db) as gb:
        gb.update_or_create_assignment("lab01_layers")
        for student, hour, minute in (("ann", 16, 59), ("bob", 18, 0)):
            gb.update_or_create_submission("lab01_layers", student,
                                           timestamp=datetime(2026, 12, 10, hour, minute))
    assert gradebook.seconds_late(db, "lab01_layers", ["ann", "bob", "cy"]) == {}  # no due date
    gradebook.set_due(db, "lab01_layers", gradebook.parse_due("2026-12-10 17:00"))
    assert gradebook.seconds_late(db, "lab01_layers", ["ann", "bob", "cy"]) == {"bob": 3600.0}


@pytest.mark.parametrize(("text", "utc"), [
    ("2026-12-10 17:00", datetime(2026, 12, 10, 17)),
    ("2026-12-10T17:00+01:00", datetime(2026, 12, 10, 16)),
    ("2026-12-10 17:00 Europe/Berlin", datetime(2026, 12, 10, 16)),
    ("2026-07-10 17:00 Europe/Berlin", datetime(2026, 7, 10, 15)),  # summer time
    ("2026-12-10 17:00 UTC", datetime(2026, 12, 10, 17))])
def test_due_dates_in_utc(text, utc):
    assert gradebook.parse_due(text) == utc


@pytest.mark.parametrize("text", ["tomorrow", "2026-12-10 17:00 CET+", "2026-13-10 17:00 UTC",
                                  "2026-12-10 17:00 Mars/Base"])
def test_what_is_not_a_due_date_is_named(text):
    with pytest.raises(ValueError, match="not a due date"):
        gradebook.parse_due(text)
