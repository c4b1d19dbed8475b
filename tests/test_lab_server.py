"""`make lab`'s server (python -m autograde lab) serves Lab 01 with the nbgrader extension."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from autograde import build
from autograde import nbgrader_glue as nbg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str) -> bytes:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read()


@pytest.mark.course
def test_jupyterlab_serves_the_labs(tmp_path):
    port, token = free_port(), "efflab-test"
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "autograde", "lab", f"--port={port}",
                               f"--token={token}"], stdout=log, stderr=subprocess.STDOUT,
                              env={**nbg.env(), "JUPYTER_RUNTIME_DIR": str(tmp_path)},
                              cwd=build.ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                listing = json.loads(get(f"{base}/api/contents/", token))
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "jupyter.log").read_text()
                assert time.monotonic() < deadline, "JupyterLab did not start in 60 s"
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert set(build.lab_names()) <= names
        nb = json.loads(get(f"{base}/api/contents/lab01_layers/lab01_layers.ipynb", token))
        assert nb["content"]["cells"][0]["source"].startswith("# Lab 01")
        page = get(f"{base}/lab", token).decode()
        assert "@jupyter/nbgrader" in page, "nbgrader's JupyterLab extension is not enabled"
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
