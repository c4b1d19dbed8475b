"""`make lab`: JupyterLab on the student's work/ folder, showing students what they need.

Students get nbgrader's Validate button and nothing of the instructor's side:
the formgrader, the assignment and course lists (which need the exchange folder of a
course JupyterHub, autograde.hub) and "Create Assignment" are switched off, in the
browser and on the server, by the server's own Jupyter config folder, whose
custom.css and a server extension (autograde.student.validation) make Validate say one line
per question. On the hub (modes "hub-student" and "hub-instructor") the same folder
turns the assignment and course lists on. The instructor's formgrader is `make formgrader LAB=...`.
The URL is printed last, once the server answers; it is the same each time for the same
folder (one token per folder), JupyterLab's news prompt is off, and Ctrl-C ends with
"server stopped" and exit 0, with `make` above it left undisturbed.
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from autograde.course import build
from autograde.nbgrader_seam.command import env

CONFIG = build.ROOT / "build" / "jupyter"
# what each mode hides in the browser and switches off on the server ("instructor" and
# "hub-instructor": nothing)
HIDDEN_PLUGINS = {"student": ("formgrader", "assignment-list", "course-list",
                              "create-assignment"),
                  "hub-student": ("formgrader", "create-assignment")}
OFF_SERVER = {"student": ("formgrader", "assignment_list", "course_list"),
              "hub-student": ("formgrader",)}
NBGRADER_SERVER = ("formgrader", "assignment_list", "course_list")
MODES = ("student", "instructor", "hub-student", "hub-instructor")
HUB_FRAMES = "frame-ancestors 'self'"  # the formgrader opens in a frame of the same server
STOP_WAIT = 15  # seconds JupyterLab has to stop on SIGTERM before it is killed
NEWS = "@jupyterlab/apputils-extension:announcements"  # "get notified about Jupyter news?"
# nbgrader's Validate dialog repeats each failed test cell's source above its error, in
# three blocks per failure; keep the errors: the first holds one line per question
# (autograde.student.validation), the others are empty
VALIDATE_CSS = """\
.validation-failed > div:nth-child(3n+1), .validation-failed > div:nth-child(3n+2) {
  display: none;
}
.validation-failed pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0; }
.validation-failed pre:empty, .validation-failed div:has(> pre:empty) { display: none; }
"""


def write_config(mode: str, root: Path = CONFIG) -> Path:
    """A Jupyter config folder for `mode` (one of MODES)."""
    if mode not in MODES:
        raise ValueError(f"no Jupyter config mode {mode!r}; modes: {', '.join(MODES)}")
    folder = root / mode
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    student = mode.endswith("student")
    server = {f"nbgrader.server_extensions.{name}": name not in OFF_SERVER.get(mode, ())
              for name in NBGRADER_SERVER}
    server["nbgrader.server_extensions.validate_assignment"] = True
    server["autograde.student.validation"] = student  # Validate says one line per question
    # the buttons use the course's tools (the grader: not on a hub's servers, which run
    # the student edition)
    server["autograde.formgrader_bridge"] = mode == "instructor"
    server["autograde.nbgrader_seam.hub_formgrader"] = mode == "hub-instructor"
    (folder / "custom").mkdir(exist_ok=True)
    (folder / "custom" / "custom.css").write_text(VALIDATE_CSS)
    app = {"jpserver_extensions": server}
    if mode.startswith("hub-"):  # JupyterHub forbids all framing; nbgrader's panels frame
        app["tornado_settings"] = {"headers": {"Content-Security-Policy": HUB_FRAMES}}
    (folder / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": app, "LabApp": {"custom_css": True}}, indent=1))
    hidden = {f"@jupyter/nbgrader:{name}": True for name in HIDDEN_PLUGINS.get(mode, ())}
    hidden[NEWS] = True
    (folder / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": hidden}, indent=1))
    return folder


def command(root: Path, port: int, token: str, config: Path) -> tuple[list[str], dict]:
    """The JupyterLab command line and environment."""
    jupyter = str(Path(sys.executable).parent / "jupyter")
    cmd = [jupyter, "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
           f"--IdentityProvider.token={token}", "--ServerApp.log_level=WARN"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # JupyterLab refuses root without it
    # the server's own config folder: its settings win, and custom/custom.css is read there
    return cmd, {**env(), "JUPYTER_CONFIG_DIR": str(config)}


def token_for(root: Path, store: Path = CONFIG / "tokens.json") -> str:
    """The folder's own token, made once and kept, so its URL (and a bookmark) stays valid."""
    key = str(root.resolve())
    try:
        tokens = json.loads(store.read_text())
    except (OSError, ValueError):
        tokens = {}
    if key not in tokens:
        tokens[key] = secrets.token_hex(16)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(tokens, indent=1))
        store.chmod(0o600)
    return tokens[key]


@contextlib.contextmanager
def own_terminal():
    """While serving, Ctrl-C reaches this command and its server, not `make` above it:
    the command takes the terminal's foreground (a process group of its own) and gives
    it back afterwards. Without a terminal, or in the background, nothing changes."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:
        yield
        return
    before = None
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # may change the foreground
    try:
        if os.tcgetpgrp(tty) == os.getpgrp():
            before = os.getpgrp()
            with contextlib.suppress(OSError):  # a session leader keeps its group
                os.setpgid(0, 0)
            os.tcsetpgrp(tty, os.getpgrp())
        yield
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(tty, before)
        signal.signal(signal.SIGTTOU, previous)
        os.close(tty)


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def serve(root: Path, port: int, token: str | None, mode: str, notes: list[str],
          cwd: Path | None = None) -> int:
    """Run JupyterLab on `root` until Ctrl-C; print the URL when it answers."""
    if port_busy(port):
        print(f"error: port {port} is in use (another JupyterLab?). Stop it, or run "
              f"`make lab PORT={port + 1}`.", file=sys.stderr)
        return 2
    token = token or token_for(root)
    cmd, environment = command(root, port, token, write_config(mode))
    with own_terminal():
        # a session of its own: Ctrl-C reaches this command, which stops the server itself
        return _run(subprocess.Popen(cmd, env=environment, cwd=cwd or root,
                                     start_new_session=True), root, port, token, notes)


def _run(server: subprocess.Popen, root: Path, port: int, token: str, notes: list[str]) -> int:
    """Wait for JupyterLab to answer, print the URL, serve until Ctrl-C, then stop it."""
    return until_stopped(server, port, "JupyterLab", notes + [
        f"\n    JupyterLab is ready: http://127.0.0.1:{port}/lab?token={token}\n"
        f"    Serving {root}. Ctrl-C stops it.\n"])


def until_stopped(server: subprocess.Popen, port: int, what: str, ready: list[str],
                  stop_wait: float = STOP_WAIT) -> int:
    """Wait for `server` (`what`: its name in messages) to answer on `port`, print the
    `ready` lines, serve until Ctrl-C or SIGTERM, then stop it (`stop`)."""
    # stopped with SIGTERM (a process manager, a test), stop the server too, not orphan it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        deadline = time.monotonic() + 120
        while not port_busy(port):
            if server.poll() is not None:
                print(f"error: {what} stopped (exit {server.returncode}); see above.",
                      file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"error: {what} did not answer in 120 s.", file=sys.stderr)
                return 1
            time.sleep(0.2)
        print("\n".join(ready), flush=True)
        return server.wait()
    except KeyboardInterrupt:
        _stop_undisturbed(server, stop_wait)
        print("\nserver stopped", flush=True)
        return 0
    finally:
        _stop_undisturbed(server, stop_wait)


def _stop_undisturbed(server: subprocess.Popen, wait: float) -> None:
    """`stop`, with a second Ctrl-C or SIGTERM (a process manager sends one, a student
    presses twice) held off until it is done: cut short, it would leave the server
    running with nothing to stop it."""
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop(server, wait)
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)


def stop(server: subprocess.Popen, wait: float = STOP_WAIT) -> None:
    """A server shut down: SIGTERM (JupyterLab stops without asking, its kernels with it;
    JupyterHub stops the servers it started), then after `wait` seconds a kill of its whole
    process group, of which it is the leader (not yet reaped, so its number cannot belong
    to anyone else)."""
    if server.poll() is not None:
        return
    server.terminate()
    try:
        server.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except OSError:  # not a group of its own (Windows): the server alone
            server.kill()
        server.wait()
