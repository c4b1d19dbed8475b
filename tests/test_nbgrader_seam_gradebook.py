"""autograde.nbgrader_seam.gradebook: students in the course's gradebook."""

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
