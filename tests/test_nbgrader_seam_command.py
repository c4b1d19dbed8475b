"""autograde.nbgrader_seam.command: the grading config as nbgrader itself reads it."""

import os
from pathlib import Path

import pytest
from nbgrader.apps.baseapp import NbGrader

from autograde.grading.cluster import ClusterExecute
from autograde.grading.executor import SandboxedExecute
from autograde.grading.feedback import QuestionTitles, ShortTracebacks
from autograde.grading.own_run import StudentsOwnRun
from autograde.grading.settings import Settings
from autograde.nbgrader_seam import command


def test_the_config_written_for_the_folder_is_the_one_nbgrader_loads(tmp_path, monkeypatch):
    settings = Settings(cell_timeout=7, notebook_timeout=99, memory_mb=321, judge=False,
                        disk_mb=77)
    db_url = f"sqlite:///{tmp_path}/gb.db"
    config = command.grading_config(tmp_path, db_url, settings.to_dict(), SandboxedExecute,
                                    [ShortTracebacks], (StudentsOwnRun, QuestionTitles))
    assert "QuestionTitles" not in config  # a step with no course_root is given none
    command.write_config(config, tmp_path)
    monkeypatch.chdir(tmp_path)
    app = NbGrader()
    app.load_config_file()  # what every nbgrader command run in the folder does
    loaded = app.config
    assert loaded.CourseDirectory.course_id == command.COURSE_ID != ""
    assert loaded.CourseDirectory.db_url == db_url
    assert Settings.from_dict(loaded.SandboxedExecute.settings) == settings
    assert loaded.SandboxedExecute.course_root == str(tmp_path)
    assert loaded.StudentsOwnRun.course_root == str(tmp_path)  # a note step that reads there
    assert loaded.Autograde.autograde_preprocessors[0] == \
        "autograde.grading.executor.SandboxedExecute"
    assert "autograde.grading.feedback.ShortTracebacks" in \
        loaded.GenerateFeedback.preprocessors
    # the formgrader reads this file too: the feedback page's template is not in it (it
    # would replace the formgrader's own and break its submission pages), the safe
    # rendering is
    assert "template_name" not in loaded.HTMLExporter
    assert loaded.HTMLExporter.sanitize_html is True
    assert loaded.HTMLExporter.filters["markdown2html"].startswith("autograde.grading.sanitize")
    assert os.path.basename(command.CONFIG_FILE) in os.listdir(Path(tmp_path))
    assert loaded.Exchange.root == str(tmp_path / "exchange")  # no "exchange missing" banner


def test_the_grading_folder_travels_as_config_for_every_step_that_works_in_it(tmp_path):
    """It was an environment variable of the grading process (EFFLAB_COURSE_ROOT)."""
    config = command.grading_config(tmp_path, "sqlite://", Settings().to_dict(), ClusterExecute,
                                    [], (StudentsOwnRun,))
    for step in (ClusterExecute, StudentsOwnRun):
        assert step(config=config).course_folder() == tmp_path
    with pytest.raises(ValueError, match="SandboxedExecute.course_root is not set"):
        SandboxedExecute().course_folder()
