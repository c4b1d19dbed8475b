"""work/ is filled once from labs/, never overwritten, and says when the release changed."""

import shutil

import pytest

from autograde.course import build
from autograde.student import workspace


@pytest.fixture
def release(tmp_path):
    dest = tmp_path / "labs"
    shutil.copytree(build.LABS, dest)
    return dest


def test_first_run_copies_every_lab_and_later_runs_touch_nothing(tmp_path, release):
    work = tmp_path / "work"
    notices = workspace.prepare(work, release)
    assert {n.lab for n in notices if n.kind == "copied"} == set(build.lab_names())
    mine = work / "lab01_layers" / "lab01_layers.ipynb"
    mine.write_text(mine.read_text().replace("YOUR CODE HERE", "my answer"))
    assert workspace.prepare(work, release) == []  # nothing to say, nothing copied
    assert "my answer" in mine.read_text()


def test_an_updated_release_is_reported_and_a_fresh_copy_keeps_the_old(tmp_path, release):
    work = tmp_path / "work"
    workspace.prepare(work, release)
    mine = work / "lab02_metrics" / "lab02_metrics.ipynb"
    mine.write_text("my work")
    (release / "lab02_metrics" / "lab02_metrics.ipynb").write_text("the corrected release")
    (notice,) = workspace.prepare(work, release)
    assert notice.kind == "updated" and "make lab FRESH=lab02_metrics" in notice.message
    assert mine.read_text() == "my work"
    assert [n.kind for n in workspace.prepare(work, release)] == ["updated"]  # until acted on
    (fresh,) = workspace.prepare(work, release, fresh=("lab02_metrics",))
    assert fresh.kind == "fresh" and mine.read_text() == "the corrected release"
    (old,) = work.glob("lab02_metrics.old-*")
    assert (old / "lab02_metrics.ipynb").read_text() == "my work"
    assert workspace.prepare(work, release) == []


def test_a_deleted_copy_comes_back_and_unknown_labs_are_named(tmp_path, release):
    work = tmp_path / "work"
    workspace.prepare(work, release)
    shutil.rmtree(work / "lab03_architectures")
    assert [n.kind for n in workspace.prepare(work, release)] == ["copied"]
    with pytest.raises(ValueError, match="no lab named lab99_x"):
        workspace.prepare(work, release, fresh=("lab99_x",))
