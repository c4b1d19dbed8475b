"""Where a hub course lives: one folder holding its configuration, exchange and course
files, and the accounts that take part."""

import json
import os
import pwd
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from autograde.nbgrader_seam.command import COURSE_ID

RECORD = "hub.json"
_ACCOUNT = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class HubError(ValueError):
    """The hub course cannot be set up or used as asked; the message says why."""


@dataclass(frozen=True)
class HubCourse:
    """A course on one machine's JupyterHub: `root` holds it all, `instructor` and
    `students` are local accounts (PAM logs them in)."""

    root: Path
    instructor: str
    students: tuple[str, ...]
    course_id: str = COURSE_ID

    def __post_init__(self):
        for name in (self.instructor, *self.students):
            if not _ACCOUNT.fullmatch(name):
                raise HubError(f"{name!r} is not a local account name (lowercase letters, "
                               "digits, _ and -)")
        if self.instructor in self.students:
            raise HubError(f"{self.instructor} cannot be the instructor and a student")
        if len(set(self.students)) != len(self.students):
            raise HubError("a student is named twice")

    @property
    def exchange(self) -> Path:
        """nbgrader's exchange: every account writes here, as nbgrader's modes allow."""
        return self.root / "exchange"

    @property
    def course(self) -> Path:
        """The instructor's nbgrader course folder: release/ and the collected submitted/."""
        return self.root / "course"

    @property
    def edition(self) -> Path:
        """The student edition the students' servers and kernels run from."""
        return self.root / "edition"

    @property
    def python(self) -> Path:
        """The edition's own environment, which every account's server runs (no account
        but root may run the course repository's, nor read its solutions)."""
        return self.edition / ".venv" / "bin" / "python"

    @property
    def interpreter(self) -> Path:
        """A copy of the Python the environment is made on, where the accounts cannot run
        the original (hub.configure.shared_python)."""
        return self.root / "python"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with what the hub's Python needs:
        its copied interpreter's shared library, if it has one."""
        environ = dict(os.environ if base is None else base)
        if (self.interpreter / "lib").is_dir():
            environ["LD_LIBRARY_PATH"] = str(self.interpreter / "lib")
        return environ

    def role_environ(self, role: str, base: dict[str, str] | None = None) -> dict[str, str]:
        """`environ(base)` as a role's processes run on the hub: the hub's Python first on
        PATH (nbgrader shells out to its alembic) and the role's Jupyter config folder."""
        return {**self.environ(base), "JUPYTER_CONFIG_DIR": str(self.jupyter / role),
                "PATH": f"{self.python.parent}:/usr/local/bin:/usr/bin:/bin"}

    @property
    def proxy(self) -> Path:
        return self.root / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"

    @property
    def jupyter(self) -> Path:
        """One Jupyter config folder per role: hub-student/ and hub-instructor/."""
        return self.root / "jupyter"

    @property
    def state(self) -> Path:
        """JupyterHub's database, cookie secret and logs (root's alone)."""
        return self.root / "state"

    @property
    def config_file(self) -> Path:
        return self.root / "jupyterhub_config.py"

    @property
    def submitted(self) -> Path:
        """Where `collect` puts submissions: submitted/STUDENT/LAB/, what `grade` reads."""
        return self.course / "submitted"

    def accounts(self) -> dict[str, pwd.struct_passwd]:
        """{name: account} of everyone in the course; HubError naming those missing."""
        found, missing = {}, []
        for name in (self.instructor, *self.students):
            try:
                found[name] = pwd.getpwnam(name)
            except KeyError:
                missing.append(name)
        if missing:
            raise HubError(f"no local account {', '.join(missing)}: create each with "
                           "`useradd -m NAME && passwd NAME` (PAM logs them in to the hub)")
        return found

    def save(self) -> None:
        record = {**asdict(self), "root": str(self.root), "students": list(self.students)}
        (self.root / RECORD).write_text(json.dumps(record, indent=1) + "\n")

    @classmethod
    def load(cls, root: Path) -> "HubCourse":
        path = root.resolve() / RECORD
        try:
            record = json.loads(path.read_text())
            return cls(Path(record["root"]), record["instructor"], tuple(record["students"]),
                       record.get("course_id", COURSE_ID))
        except FileNotFoundError:
            raise HubError(f"{root} is not a hub course: run `python -m autograde hub setup "
                           f"{root} --instructor NAME --students NAME ...` first") from None
        except (KeyError, TypeError, ValueError) as e:
            raise HubError(f"{path} is not a hub course's record ({e})") from None
