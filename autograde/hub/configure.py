"""`hub setup`: a hub course's folders with the owners and modes nbgrader's exchange
needs, the student edition with its own environment (what students' servers and kernels
run: efflib and the visible checks, nothing of the solutions), JupyterHub's proxy, one
Jupyter config folder per role and jupyterhub_config.py."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from autograde.course import build, edition
from autograde.hub import access
from autograde.hub.course import HubCourse, HubError
from autograde.student import lab_server

PROXY_FILES = Path(__file__).parent / "proxy"  # package.json and its lock, for `npm ci`
EXCHANGE_MODE = 0o1777  # nbgrader wants its root writable by all; sticky: none removes another's
INSTALL_TIMEOUT = 1800


def setup(hub: HubCourse, labs: list[str] | None = None) -> list[str]:
    """Write the hub course in `hub.root` (again: updated in place, students' work and
    environments kept); returns what the instructor should know, one line each."""
    if os.geteuid() != 0:
        raise HubError("hub setup needs root: JupyterHub starts each account's server as "
                       "that account, and the course folder is handed to the instructor "
                       "(run it with sudo)")
    accounts = hub.accounts()
    for folder, mode in ((hub.root, 0o755), (hub.exchange, EXCHANGE_MODE), (hub.state, 0o700),
                         (hub.course, 0o700), (hub.jupyter, 0o755)):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(mode)
    instructor = accounts[hub.instructor]
    os.chown(hub.course, instructor.pw_uid, instructor.pw_gid)
    edition.write(hub.edition, labs)
    _environment(hub)
    _proxy(hub)
    for role in ("hub-student", "hub-instructor"):
        folder = lab_server.write_config(role, hub.jupyter)
        (folder / "nbgrader_config.py").write_text(nbgrader_config(hub, role))
        # jupyter_core writes this marker into a config folder that lacks it, and fails
        # where the folder is read-only to the account (an nbgrader command in a terminal)
        (folder / "migrated").touch()
    hub.config_file.write_text(jupyterhub_config(hub))
    hub.save()
    _readable(hub.root, [hub.exchange, hub.state, hub.course])
    notes = [f"closed {name}'s home to the other accounts (0700)" for name in
             access.close_homes({n: Path(a.pw_dir) for n, a in accounts.items()})]
    notes += [f"WARNING: students on this machine can read {path}: "
              f"`chmod -R o-rwx {path}` closes it" for path in access.exposed(build.ROOT)]
    return notes


def _run(cmd: list[str], cwd: Path, what: str, environ: dict | None = None) -> None:
    """Run an installation step; HubError with the end of its output if it fails."""
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=environ,
                              timeout=INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HubError(f"{what} failed: {e}") from None
    if done.returncode != 0:
        raise HubError(f"{what} failed (exit {done.returncode}):\n"
                       f"{(done.stdout + done.stderr)[-3000:]}")


def shared_python(hub: HubCourse) -> Path:
    """This Python, where every account can run it; else (a pyenv in root's home) a copy
    of its interpreter and standard library in the hub's folder, hub.interpreter, whose
    shared library the accounts' servers find through LD_LIBRARY_PATH."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if access.others_can_run(base):
        return base
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefix, copy = Path(sys.base_prefix), hub.interpreter
    if not (copy / "bin" / version).is_file():
        shutil.rmtree(copy, ignore_errors=True)
        (copy / "bin").mkdir(parents=True)
        shutil.copy2(prefix / "bin" / version, copy / "bin" / version)
        (copy / "lib").mkdir()
        for library in (prefix / "lib").glob("libpython*"):
            shutil.copy2(library, copy / "lib" / library.name, follow_symlinks=False)
        shutil.copytree(prefix / "lib" / version, copy / "lib" / version, symlinks=True,
                        ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__"))
        (copy / "lib" / version / "site-packages").mkdir()
        if (prefix / "include").is_dir():
            shutil.copytree(prefix / "include", copy / "include", symlinks=True)
    return copy / "bin" / version


def _environment(hub: HubCourse) -> None:
    """The edition's own .venv (its `make setup`) on a Python every account can run, with
    JupyterHub's single-user server."""
    base = shared_python(hub)
    venv = hub.python.parent.parent
    if venv.exists() and f"home = {base.parent}\n" not in _text(venv / "pyvenv.cfg"):
        shutil.rmtree(venv)  # made on another Python (one the accounts cannot run)
    _run(["make", "-s", "setup", f"PYTHON={base}"], hub.edition,
         "installing the student edition's environment (make setup)", hub.environ())
    if subprocess.run([hub.python, "-c", "import jupyterhub"], capture_output=True,
                      env=hub.environ()).returncode != 0:
        _run([str(hub.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
              "-c", "constraints.txt", "jupyterhub"],
             hub.edition, "installing JupyterHub's single-user server", hub.environ())


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _proxy(hub: HubCourse) -> None:
    """configurable-http-proxy, the version PROXY_FILES lock, from npm (`npm ci`)."""
    folder = hub.root / "proxy"
    folder.mkdir(exist_ok=True)
    lock = (PROXY_FILES / "package-lock.json").read_bytes()
    if hub.proxy.exists() and (folder / "package-lock.json").is_file() \
            and (folder / "package-lock.json").read_bytes() == lock:
        return
    if shutil.which("npm") is None:
        raise HubError("JupyterHub's proxy needs Node.js and npm: install them "
                       "(apt-get install nodejs npm), then run hub setup again")
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(PROXY_FILES / name, folder / name)
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], folder,
         "installing configurable-http-proxy (npm ci)")


def _readable(root: Path, private: list[Path]) -> None:
    """Everything under `root` readable by all accounts but the `private` folders, which
    keep the modes set above (the exchange's are nbgrader's to set)."""
    for path in [root, *root.iterdir()]:
        if path in private:
            continue
        if path.is_dir() and path != root:
            subprocess.run(["chmod", "-R", "a+rX", str(path)], check=True)
        elif path.is_file():
            path.chmod(path.stat().st_mode | 0o444)


def nbgrader_config(hub: HubCourse, role: str) -> str:
    """The nbgrader settings of a role's servers: the course and its exchange (and, for
    the instructor, the course folder that release and collect use)."""
    lines = ['"""nbgrader on the course JupyterHub (written by `autograde hub setup`)."""',
             "", "c = get_config()  # noqa: F821 - provided by nbgrader",
             f"c.CourseDirectory.course_id = {hub.course_id!r}",
             f"c.Exchange.root = {str(hub.exchange)!r}"]
    if role == "hub-instructor":
        lines += [f"c.CourseDirectory.root = {str(hub.course)!r}",
                  'c.CourseDirectory.release_directory = "release"']
    return "\n".join(lines) + "\n"


def jupyterhub_config(hub: HubCourse) -> str:
    """jupyterhub_config.py: PAM log-in for the course's accounts, each server started as
    its account from the edition's environment with its role's Jupyter config, the proxy
    from hub setup, state kept in state/. Ports come from `hub serve`."""
    return f'''"""JupyterHub of the efflab course in {hub.root} (written by `python -m autograde hub
setup`; write it again rather than edit it)."""

import pwd

c = get_config()  # noqa: F821 - provided by JupyterHub

INSTRUCTOR = {hub.instructor!r}
STUDENTS = set({sorted(hub.students)!r})
PYTHON = {str(hub.python)!r}  # the student edition's environment: every server runs it
LIBRARIES = {hub.environ(base={}).get("LD_LIBRARY_PATH")!r}  # its interpreter's, if copied
CONFIG = {str(hub.jupyter)!r}  # a Jupyter config folder per role: hub-student, hub-instructor
COURSE = {str(hub.course)!r}  # the instructor's server runs there: its formgrader's course

c.JupyterHub.db_url = {"sqlite:///" + str(hub.state / "jupyterhub.sqlite")!r}
c.JupyterHub.cookie_secret_file = {str(hub.state / "jupyterhub_cookie_secret")!r}
c.ConfigurableHTTPProxy.command = [{str(hub.proxy)!r}]
c.ConfigurableHTTPProxy.pid_file = {str(hub.state / "proxy.pid")!r}
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every server it started
c.Authenticator.allowed_users = STUDENTS | {{INSTRUCTOR}}
c.Authenticator.admin_users = {{INSTRUCTOR}}
c.PAMAuthenticator.open_sessions = False
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120  # a first start imports torch
c.Spawner.http_timeout = 120


def role_environment(spawner):
    """The account's role decides its server's Jupyter config folder."""
    role = "hub-instructor" if spawner.user.name == INSTRUCTOR else "hub-student"
    home = pwd.getpwnam(spawner.user.name).pw_dir
    spawner.cmd = [PYTHON, "-m", "jupyterhub.singleuser"]
    spawner.environment.update({{
        "PATH": PYTHON.rsplit("/", 1)[0] + ":/usr/local/bin:/usr/bin:/bin",
        "JUPYTER_CONFIG_DIR": CONFIG + "/" + role,  # read-only: the role's settings win
        "JUPYTERLAB_WORKSPACES_DIR": home + "/.jupyter/lab/workspaces",
        "JUPYTERLAB_SETTINGS_DIR": home + "/.jupyter/lab/user-settings",
    }})
    if LIBRARIES:
        spawner.environment["LD_LIBRARY_PATH"] = LIBRARIES
    if role == "hub-instructor":  # nbgrader's formgrader wants its course under the root
        spawner.notebook_dir = COURSE


c.Spawner.pre_spawn_hook = role_environment
'''
