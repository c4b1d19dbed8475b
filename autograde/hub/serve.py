"""`hub serve`: JupyterHub for a hub course, in the foreground until Ctrl-C; stopping it
stops every server it started and its proxy."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from autograde.hub.course import HubCourse, HubError
from autograde.nbgrader_seam.command import env
from autograde.student import lab_server

STOP_WAIT = 60  # seconds JupyterHub has to stop its servers and proxy on SIGTERM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(hub: HubCourse, port: int, ip: str = "127.0.0.1") -> tuple[list[str], dict]:
    """JupyterHub's command line (the hub's API and the proxy's on free local ports) and
    its environment."""
    jupyterhub = str(Path(sys.executable).parent / "jupyterhub")
    return [jupyterhub, "-f", str(hub.config_file), f"--JupyterHub.bind_url=http://{ip}:{port}",
            f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}",
            f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}"], env()


def check(hub: HubCourse, port: int) -> None:
    """HubError unless this machine can serve the course now."""
    if os.geteuid() != 0:
        raise HubError("hub serve needs root: JupyterHub starts each account's server as "
                       "that account (run it with sudo)")
    if not hub.config_file.is_file() or not hub.proxy.exists():
        raise HubError(f"{hub.root} is not set up: run `python -m autograde hub setup` again")
    if lab_server.port_busy(port):
        raise HubError(f"port {port} is in use: stop what serves it, or choose --port")
    hub.accounts()


def serve(hub: HubCourse, port: int, ip: str = "127.0.0.1") -> int:
    """Run JupyterHub until Ctrl-C (or SIGTERM); print its URL once it answers."""
    check(hub, port)
    cmd, environment = command(hub, port, ip)
    shown = "127.0.0.1" if ip in ("", "0.0.0.0") else ip
    ready = [f"\n    JupyterHub is ready: http://{shown}:{port}/hub/login\n"
             f"    Course {hub.course_id} in {hub.root}: instructor {hub.instructor}, "
             f"{len(hub.students)} students. Ctrl-C stops it and every server it started.\n"]
    log = open(hub.state / "jupyterhub.log", "a")  # noqa: SIM115 - the server's lifetime
    with log, lab_server.own_terminal():
        server = subprocess.Popen(cmd, env=environment, cwd=hub.state, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        print(f"JupyterHub's log: {hub.state / 'jupyterhub.log'}", flush=True)
        return lab_server.until_stopped(server, port, "JupyterHub", ready, STOP_WAIT)
