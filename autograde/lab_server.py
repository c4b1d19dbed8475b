"""`make lab`: JupyterLab on the student's work/ folder, showing students what they need.

Students get nbgrader's Validate button and nothing of the instructor's side:
the formgrader, the assignment and course lists (which need an exchange folder
this course does not use) and "Create Assignment" are switched off, in the
browser and on the server, by the server's own Jupyter config folder, whose
custom.css and a server extension (autograde.validation) make Validate say one line
per question. The instructor's formgrader is `python -m autograde formgrader LAB`.
The URL is printed last, once the server answers.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from autograde import build
from autograde.nbgrader_glue import env

CONFIG = build.ROOT / "build" / "jupyter"
STUDENT_HIDDEN_PLUGINS = ("formgrader", "assignment-list", "course-list", "create-assignment")
STUDENT_OFF_SERVER = ("formgrader", "assignment_list", "course_list")
# nbgrader's Validate dialog repeats each failed test cell's source above its error, in
# three blocks per failure; keep the errors: the first holds one line per question
# (autograde.validation), the others are empty
VALIDATE_CSS = """\
.validation-failed > div:nth-child(3n+1), .validation-failed > div:nth-child(3n+2) {
  display: none;
}
.validation-failed pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0; }
.validation-failed pre:empty, .validation-failed div:has(> pre:empty) { display: none; }
"""


def write_config(mode: str, root: Path = CONFIG) -> Path:
    """A Jupyter config folder for `mode` ("student" or "instructor")."""
    folder = root / mode
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    student = mode == "student"
    server = {f"nbgrader.server_extensions.{name}": not student for name in STUDENT_OFF_SERVER}
    server["nbgrader.server_extensions.validate_assignment"] = True
    server["autograde.validation"] = student  # Validate says one line per question
    (folder / "custom").mkdir(exist_ok=True)
    (folder / "custom" / "custom.css").write_text(VALIDATE_CSS)
    (folder / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": server},
        "LabApp": {"custom_css": True}}, indent=1))
    hidden = {f"@jupyter/nbgrader:{name}": True for name in STUDENT_HIDDEN_PLUGINS} \
        if student else {}
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


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def serve(root: Path, port: int, token: str | None, mode: str, notes: list[str],
          cwd: Path | None = None) -> int:
    """Run JupyterLab on `root` until Ctrl-C; print the URL when it answers."""
    if _port_busy(port):
        print(f"error: port {port} is in use (another JupyterLab?). Stop it, or run "
              f"`make lab PORT={port + 1}`.", file=sys.stderr)
        return 2
    token = token or secrets.token_hex(16)
    cmd, environment = command(root, port, token, write_config(mode))
    server = subprocess.Popen(cmd, env=environment, cwd=cwd or root)
    # stopped with SIGTERM (a process manager, a test), stop JupyterLab too, not orphan it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        deadline = time.monotonic() + 120
        while not _port_busy(port):
            if server.poll() is not None:
                print(f"error: JupyterLab stopped (exit {server.returncode}); see above.",
                      file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print("error: JupyterLab did not answer in 120 s.", file=sys.stderr)
                return 1
            time.sleep(0.2)
        for note in notes:
            print(note)
        print(f"\n    JupyterLab is ready: http://127.0.0.1:{port}/lab?token={token}\n"
              f"    Serving {root}. Ctrl-C stops it.\n", flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """JupyterLab shut down: SIGINT twice (it asks to confirm the first), then kill."""
    if server.poll() is not None:
        return
    for sig in (signal.SIGINT, signal.SIGINT):
        server.send_signal(sig)
        time.sleep(0.2)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
