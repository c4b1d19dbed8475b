"""The lab build: fixed ids, clear errors on malformed sources, student work kept."""

import shutil

import pytest

from autograde.course import build


def test_cell_ids_are_grade_ids_or_numbered():
    nb = build.source_notebook("lab01_layers")
    for i, cell in enumerate(nb.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        assert cell.id == (gid or f"cell-{i:03d}")
    assert "jupytext" not in nb.metadata


def write_source(tmp_path, body: str):
    path = tmp_path / "lab99_bad.py"
    path.write_text("# %% [markdown]\n# ## Q1. Thing (1 point)\n\n" + body)
    return path


META = ('{{"grade": {grade}, "grade_id": "{gid}", "locked": {locked}, "points": 1, '
        '"schema_version": 3, "solution": {solution}, "task": false}}')


def cell(gid, grade="true", solution="false", locked="true"):
    return "# %% nbgrader=" + META.format(gid=gid, grade=grade, solution=solution,
                                          locked=locked) + "\n"


@pytest.mark.parametrize("body,message", [
    (cell("q1_a_test") + '"""Doc."""\nx = 1\n\n' + cell("q1_a_test") + '"""Doc."""\n',
     "share the id 'q1_a_test'"),
    (cell("q1_a_test") + "assert True\n", "must begin with a one-line docstring"),
    (cell("q1_a") + '"""Doc."""\n', "should end in _test"),
])
def test_malformed_sources_are_refused_with_the_reason(tmp_path, body, message):
    with pytest.raises(build.BuildError, match=message):
        build.source_notebook(write_source(tmp_path, body))


def test_unknown_lab_names_the_known_ones():
    with pytest.raises(build.BuildError, match="lab01_layers"):
        build.source_path("lab42_nothing")


@pytest.mark.course
def test_keep_existing_never_overwrites_student_work(tmp_path):
    dest = tmp_path / "labs"
    shutil.copytree(build.LABS, dest)
    mine = dest / "lab01_layers" / "lab01_layers.ipynb"
    mine.write_text(mine.read_text().replace("raise NotImplementedError()", "return 42", 1))
    edited = mine.read_text()
    assert build.build(keep_existing=True, dest=dest) == []
    assert mine.read_text() == edited
    mine.unlink()
    assert build.build(keep_existing=True, dest=dest) == [mine]
    assert mine.read_bytes() == (build.LABS / "lab01_layers" / "lab01_layers.ipynb").read_bytes()
