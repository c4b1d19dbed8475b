"""Finding one notebook per student in a folder or zip, without trusting the archive."""

import stat
import zipfile

import nbformat
import pytest

from autograde.grading import submissions
from autograde.grading.submissions import collect, repair, student_id


def _nb(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), path)


def test_folder_layouts_and_problems(tmp_path):
    src = tmp_path / "in"
    _nb(src / "ann.ipynb")
    _nb(src / "bob" / "work" / "lab01_layers.ipynb")
    _nb(src / "bob" / "scratch.ipynb")
    _nb(src / "cy" / "a.ipynb")
    _nb(src / "cy" / "b.ipynb")
    (src / "dee").mkdir()
    (src / "eve.ipynb").write_text("{oops")
    subs = {s.student: s for s in collect(src, "lab01_layers", tmp_path / "scratch")}
    assert set(subs) == {"ann", "bob", "cy", "dee", "eve"}
    assert subs["bob"].notebook.name == "lab01_layers.ipynb" and not subs["bob"].problem
    assert subs["cy"].notebook.name == "a.ipynb" and "2 notebooks" in subs["cy"].problem
    assert subs["dee"].notebook is None and "no notebook" in subs["dee"].problem
    assert subs["eve"].notebook is None and "not a readable notebook" in subs["eve"].problem


def test_zip_is_unpacked_safely(tmp_path):
    archive = tmp_path / "class.zip"
    good = nbformat.writes(nbformat.v4.new_notebook())
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("class/ann.ipynb", good)
        zf.writestr("class/bob/lab01_layers.ipynb", good)
        zf.writestr("../escape.ipynb", good)
        zf.writestr("/abs.ipynb", good)
        link = zipfile.ZipInfo("class/link.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    subs = collect(archive, "lab01_layers", tmp_path / "scratch")
    assert sorted(s.student for s in subs) == ["ann", "bob"]
    assert not (tmp_path / "escape.ipynb").exists()
    with pytest.raises(ValueError, match="neither a folder nor a zip"):
        (tmp_path / "notes.txt").write_text("x")
        collect(tmp_path / "notes.txt", "lab01_layers", tmp_path / "s2")


def test_one_bad_zip_entry_costs_only_its_student(tmp_path, monkeypatch):
    """An entry too big to unpack, or corrupt, is reported against its student; the rest of
    the class is still collected (it used to stop the whole run)."""
    monkeypatch.setattr(submissions, "MAX_NOTEBOOK_BYTES", 5_000)
    archive = tmp_path / "class.zip"
    good = nbformat.writes(nbformat.v4.new_notebook())
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("class/ann.ipynb", good)
        zf.writestr("class/bob/lab01_layers.ipynb", good + " " * 10_000)  # too big
        zf.writestr("class/cy.ipynb", good)
        zf.writestr("class/dee/lab01_layers.ipynb", good.replace("cells", "cellz"))
    data = bytearray(archive.read_bytes())  # corrupt dee's bytes, keep the zip's index
    at = data.index(b'"cellz"')
    data[at:at + 7] = b'"XXXXX"'
    archive.write_bytes(bytes(data))
    subs = {s.student: s for s in collect(archive, "lab01_layers", tmp_path / "scratch")}
    assert set(subs) == {"ann", "bob", "cy", "dee"}
    assert subs["ann"].notebook and subs["cy"].notebook and not subs["ann"].problem
    assert subs["bob"].notebook is None and "declares" in subs["bob"].problem
    assert subs["dee"].notebook is None and "unreadable" in subs["dee"].problem


def test_student_ids_are_safe():
    assert student_id("../../etc passwd") == "etc_passwd"
    assert student_id("Zoë O'Neil") == "Zo_O_Neil"
    assert student_id("...") == "student"


def test_repair_reports_what_it_changed(tmp_path):
    nb = nbformat.v4.new_notebook()
    test = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "q1_x_test"}})
    twin = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "q1_x_test"}})
    extra = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade_id": "bonus"}})
    nb.cells = [test, twin, extra]
    nbformat.write(nb, tmp_path / "n.ipynb")
    fixed, notes = repair(tmp_path / "n.ipynb", {"q1_x_test": {}, "q2_y_test": {}})
    assert len(fixed.cells) == 2 and "nbgrader" not in fixed.cells[1].metadata
    assert notes == ["removed a duplicate of cell q1_x_test", "cell 'bonus' is not part of "
                     "the lab: ignored", "test cells deleted (0 points): q2_y_test"]


def test_repair_restores_grading_flags_a_student_flipped(tmp_path):
    """`grade: true` switched on an answer cell made nbgrader fail the whole notebook."""
    lab = {"q1_x": {"grade_id": "q1_x", "grade": False, "solution": True, "locked": False},
           "q1_x_test": {"grade_id": "q1_x_test", "grade": True, "solution": False,
                         "locked": True, "points": 2}}
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        **lab["q1_x"], "grade": True, "points": 50}})
    test = nbformat.v4.new_code_cell("assert x", metadata={"nbgrader": {
        **lab["q1_x_test"], "points": 99, "checksum": "abc"}})
    nb.cells = [answer, test]
    nbformat.write(nb, tmp_path / "n.ipynb")
    fixed, notes = repair(tmp_path / "n.ipynb", lab)
    meta = [c.metadata["nbgrader"] for c in fixed.cells]
    assert meta[0]["grade"] is False and meta[1]["points"] == 2
    assert meta[1]["checksum"] == "abc"  # what the lab does not set is left alone
    assert notes == ["cell q1_x's grading settings were edited: restored",
                     "cell q1_x_test's grading settings were edited: restored"]


STAMP = "2026-12-05 08:00:00.123456 UTC"
SECRET = "ab" * 64


def test_nbgraders_collected_layout_brings_its_time_and_secret(tmp_path):
    """submitted/STUDENT/LAB/ as `nbgrader collect` leaves it: this lab's notebook (not
    another lab's beside it), with the exchange's files; a forged or broken one is left
    out and said."""
    src = tmp_path / "submitted"
    for student in ("ann", "bob", "cy"):
        _nb(src / student / "lab01_layers" / "lab01_layers.ipynb")
        (src / student / "lab01_layers" / "timestamp.txt").write_text(STAMP)
    _nb(src / "ann" / "lab02_metrics" / "lab02_metrics.ipynb")
    (src / "ann" / "lab01_layers" / "submission_secret.txt").write_text(SECRET)
    (src / "bob" / "lab01_layers" / "timestamp.txt").write_text("yesterday, honest")
    (src / "cy" / "lab01_layers" / "submission_secret.txt").write_text("../../etc/passwd")
    _nb(src / "dee" / "lab02_metrics" / "lab02_metrics.ipynb")  # another lab only
    subs = {s.student: s for s in collect(src, "lab01_layers", tmp_path / "scratch")}
    assert subs["ann"].exchange == {"timestamp.txt": STAMP, "submission_secret.txt": SECRET}
    assert subs["ann"].notebook.parent.name == "lab01_layers" and not subs["ann"].problem
    assert subs["bob"].exchange == {} and "timestamp.txt does not hold a time" in \
        subs["bob"].problem
    assert subs["cy"].exchange == {"timestamp.txt": STAMP}
    assert "submission_secret.txt is not one nbgrader's submit wrote" in subs["cy"].problem
    assert subs["dee"].notebook is None and subs["dee"].problem == "no notebook in the submission"


def test_a_submission_handed_in_again_is_a_new_one(tmp_path):
    """The same notebook submitted again through the exchange (a new time, a new secret):
    graded again, so that its feedback goes back under the new secret's name."""
    _nb(tmp_path / "n.ipynb")
    first = submissions.Submission("ann", tmp_path / "n.ipynb", exchange={"timestamp.txt": STAMP})
    again = submissions.Submission("ann", tmp_path / "n.ipynb",
                                   exchange={"timestamp.txt": STAMP.replace("08:00", "09:00")})
    plain = submissions.Submission("ann", tmp_path / "n.ipynb")
    assert len({first.digest, again.digest, plain.digest}) == 3
