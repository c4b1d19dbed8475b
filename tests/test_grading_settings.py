"""autograde.grading.settings: one record of the grading settings, from the command line to
the kernel's sandbox, the Dask task and a later regrade."""

import argparse
import json
import subprocess
import sys
from dataclasses import fields

import pytest
from nbgrader.apps.baseapp import NbGrader

from autograde.course import build
from autograde.grading import regrade, settings
from autograde.grading.cluster import ClusterExecute
from autograde.grading.executor import SandboxedExecute
from autograde.grading.folder import SETTINGS_FILE
from autograde.grading.grader import Grader
from autograde.grading.settings import Settings
from autograde.nbgrader_seam import command

LAB = "lab01_layers"


def parsed(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    settings.add_options(parser)
    return settings.from_options(parser.parse_args(list(argv)))


def test_the_grade_command_offers_each_setting_with_its_one_default():
    assert parsed() == Settings()
    assert parsed("--memory-mb", "1500", "--cell-timeout", "9") == \
        Settings(memory_mb=1500, cell_timeout=9)
    shown = subprocess.run([sys.executable, "-m", "autograde", "grade", "--help"], check=True,
                           capture_output=True, text=True, cwd=build.ROOT).stdout
    for f in fields(Settings):
        if "help" in f.metadata:
            option = "--" + f.name.replace("_", "-")
            assert option in shown, option
    assert f"(default: {Settings().memory_mb})" in " ".join(shown.split())


@pytest.mark.parametrize("values, named", [
    ({"memory_mb": 0}, "memory_mb"), ({"cell_timeout": "60"}, "cell_timeout"),
    ({"disk_mb": True}, "disk_mb"), ({"judge": 1}, "judge"), ({"memroy_mb": 9}, "memroy_mb"),
])
def test_a_bad_setting_is_refused_by_name(values, named):
    with pytest.raises(ValueError, match=named):
        Settings.from_dict({**Settings().to_dict(), **values})


def test_the_sandbox_policy_is_made_from_the_settings():
    policy = Settings(memory_mb=700, cpu_seconds=30, disk_mb=64).policy(hide=["/course"])
    assert (policy.memory_mb, policy.cpu_seconds, policy.disk_mb, policy.hide) == \
        (700, 30, 64, ["/course"])


@pytest.mark.parametrize("execute", [ClusterExecute, SandboxedExecute])
def test_nbgrader_carries_every_setting_to_the_execute_step(tmp_path, monkeypatch, execute):
    """One trait, whole: the Dask step once carried five of the settings and lost
    clean_room (a worker judged with the clean room whatever the grader was told)."""
    chosen = Settings(cell_timeout=7, notebook_timeout=99, memory_mb=321, disk_mb=77,
                      cpu_seconds=5, judge=False, clean_room=False)
    config = command.grading_config(tmp_path, "sqlite://", chosen.to_dict(), execute, [])
    command.write_config(config, tmp_path)
    monkeypatch.chdir(tmp_path)
    app = NbGrader()
    app.load_config_file()
    loaded = app.config[execute.__name__].settings
    assert Settings.from_dict(loaded) == chosen
    assert Settings.from_dict(execute(config=app.config).settings) == chosen


def test_a_regrade_grades_with_the_settings_of_the_last_run(tmp_path):
    chosen = Settings(cell_timeout=33, memory_mb=2000, clean_room=False)
    grader = Grader(LAB, tmp_path, workers=1, settings=chosen)
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(grader.saved()))
    again = regrade.graded_before(LAB, tmp_path)
    assert (again.settings, again.workers, again.db_url) == (chosen, 1, grader.db_url)


def test_a_folder_graded_before_settings_were_one_record_regrades_with_its_settings(tmp_path):
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({  # grading.json as 2026-11 wrote it
        "workers": 2, "db_url": "sqlite:///x.db", "cell_timeout": 45, "notebook_timeout": 600,
        "memory_mb": 2500, "judge": True, "disk_mb": 512, "secret_file": "/s",
        "clean_room": True}))
    again = regrade.graded_before(LAB, tmp_path)
    assert again.settings == Settings(cell_timeout=45, memory_mb=2500)
    (tmp_path / SETTINGS_FILE).write_text(json.dumps({"workers": 2, "db_url": "sqlite://",
                                                      "secret_file": "/s", "memroy": 1}))
    with pytest.raises(regrade.RegradeError, match="memroy"):
        regrade.graded_before(LAB, tmp_path)
