"""autograde.hub.access: what other accounts can read and run, and closing homes."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from autograde.hub import access


@pytest.fixture
def open_dir():
    """A folder every account can reach (pytest's own tmp_path sits in a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_reading_needs_every_folder_above_searchable(open_dir):
    folder, file = open_dir / "open", open_dir / "open" / "notes.txt"
    folder.mkdir(mode=0o755)
    file.write_text("x")
    file.chmod(0o644)
    assert access.others_can_read(file) and access.others_can_read(folder)
    folder.chmod(0o750)  # the file is still 0644, but no one else can reach it
    assert not access.others_can_read(file) and not access.others_can_read(folder)
    folder.chmod(0o711)  # searchable, not listable
    assert access.others_can_read(file) and not access.others_can_read(folder)


def test_running_needs_the_program_executable_by_others(open_dir):
    program = open_dir / "python"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o700)
    assert not access.others_can_run(program)
    program.chmod(0o755)
    assert access.others_can_run(program)
    link = open_dir / "python3"
    link.symlink_to(program)
    assert access.others_can_run(link)
    assert not access.others_can_run(open_dir / "missing")


def test_the_repositorys_instructor_folders_and_the_homes(open_dir):
    for name in ("solutions", "build", "efflib"):
        (open_dir / name).mkdir(mode=0o755)
    (open_dir / "build").chmod(0o700)
    assert access.exposed(open_dir) == [open_dir / "solutions"]  # efflib is the students'
    homes = {"ann": open_dir / "ann", "bob": open_dir / "bob"}
    homes["ann"].mkdir(mode=0o755)
    homes["bob"].mkdir(mode=0o700)
    assert access.close_homes(homes) == ["ann"]
    assert os.stat(homes["ann"]).st_mode & 0o777 == 0o700
