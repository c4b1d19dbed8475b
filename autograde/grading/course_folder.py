"""The grading folder, as a trait of the preprocessors that read or write inside it.

nbgrader builds its preprocessors from the config; `nbgrader_seam.command.grading_config` sets
this trait there for every one that has it, so the folder travels as config, not as an
environment variable of the grading process.
"""

from pathlib import Path

from traitlets import Unicode
from traitlets.config import Configurable


class InCourse(Configurable):
    """A preprocessor that works inside the grading folder (`course_root`)."""

    course_root = Unicode("", help="The grading folder: outcome records, the grading key "
                                   "and the submitted notebooks are there").tag(config=True)

    def course_folder(self) -> Path:
        if not self.course_root:
            raise ValueError(f"{type(self).__name__}.course_root is not set: build the "
                             "config with nbgrader_seam.command.grading_config")
        return Path(self.course_root)
