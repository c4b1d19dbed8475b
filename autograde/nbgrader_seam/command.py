"""The nbgrader command and its config: the course id, the grading folder's settings as
nbgrader reads them, and the CLI run for a course folder.

nbgrader stays the engine (gradebook, restoring test cells, scoring, feedback).
The grading folder's settings are a traitlets `Config` built here from classes;
workers use it as it is, and it is also written as `nbgrader_config.json` for
the nbgrader commands an instructor runs in that folder.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)
from traitlets.config import Config

# nbgrader's default course id "" creates no course row: SQLite does not mind, but
# PostgreSQL's foreign keys refuse every assignment
COURSE_ID = "efflab"
CONFIG_FILE = "nbgrader_config.json"


class NbgraderError(RuntimeError):
    """An nbgrader command failed; the message holds its command and output."""


def grading_config(root: Path, db_url: str, settings: dict, execute: type,
                   feedback: list[type], notes: tuple[type, ...] = ()) -> Config:
    """nbgrader's settings for a grading folder: `execute` runs the notebook in place of
    nbgrader's Execute step with the grading `settings` (grading.settings.Settings, as a
    dict: one trait), `notes` add to the graded notebook after it, `feedback` are the
    preprocessors that shape what students see of it (after nbgrader has read the
    grades). The feedback page's template is not among them: the formgrader reads this
    file too and must keep its own (`feedback.page_args`)."""
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.release_directory = "release"
    c.CourseDirectory.db_url = db_url
    c.CourseDirectory.course_id = COURSE_ID
    # the course hands out labs by git, not by nbgrader's exchange; a folder of its own
    # keeps the formgrader from warning that the default one is missing
    c.Exchange.root = str(root / "exchange")
    c.Autograde.autograde_preprocessors = [
        execute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, *notes,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c[execute.__name__].settings = dict(settings)
    for step in (execute, *notes):  # those that read or write inside the grading folder
        if "course_root" in step.class_trait_names():
            c[step.__name__].course_root = str(root)
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, *feedback,
                                        ClearHiddenTests]
    # every page rendered from a submission (feedback, the formgrader) passes what the
    # student wrote through an allow-list: markdown, HTML outputs, math (grading.sanitize)
    c.HTMLExporter.sanitize_html = True
    c.HTMLExporter.filters = {name: f"autograde.grading.sanitize.{name}"
                              for name in ("markdown2html", "clean_html")}
    return c


def write_config(config: Config, folder: Path) -> Path:
    """`config` as `nbgrader_config.json` in `folder` (classes become dotted names)."""
    def plain(value):
        if isinstance(value, type):
            return f"{value.__module__}.{value.__qualname__}"
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    path = folder / CONFIG_FILE
    path.write_text(json.dumps(plain(config), indent=1) + "\n")
    return path


def env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH: nbgrader shells out to `alembic`."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bindir, os.environ.get("PATH", "")])}


def run(root: Path, *args: str, timeout: float | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` for the course rooted at `root`; raises NbgraderError on failure."""
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True,
                          env={**env(), **(extra_env or {})}, timeout=timeout)
    if done.returncode != 0:
        raise NbgraderError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n"
                            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done
