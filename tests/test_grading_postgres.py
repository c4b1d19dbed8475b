"""`--db postgresql://...`: the whole grading run against a real PostgreSQL server,
started here on a Unix socket in a throwaway folder (no network, no system service)."""

import csv
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograde.course import build
from autograde.nbgrader_seam.command import COURSE_ID
from autograde.sandbox import policy as sandbox

LAB = "lab01_layers"
FULL = 25
pytestmark = [pytest.mark.course,
              pytest.mark.skipif(sandbox.isolation_problem() is not None,
                                 reason=f"no isolation here: {sandbox.isolation_problem()}")]


def _server_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh PostgreSQL cluster owned by `nobody` (the server refuses to run as root)."""
    initdb, server = _server_binary("initdb"), _server_binary("postgres")
    if not (initdb and server):
        pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")
    root = Path(tempfile.mkdtemp(prefix="efflab-pg-"))  # not under pytest's root-only tmp
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    as_nobody = []
    if os.geteuid() == 0:
        for p in (root, sock):
            os.chown(p, sandbox.NOBODY, sandbox.NOBODY)
        as_nobody = ["setpriv", f"--reuid={sandbox.NOBODY}", f"--regid={sandbox.NOBODY}",
                     "--clear-groups"]
    subprocess.run(as_nobody + [initdb, "-D", str(data), "-U", "efflab", "--auth=trust",
                                "--no-sync"], check=True, capture_output=True, cwd=root)
    proc = subprocess.Popen(as_nobody + [server, "-D", str(data), "-k", str(sock),
                                         "-c", "listen_addresses=", "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root)
    try:
        import psycopg2

        deadline = time.monotonic() + 60
        while True:
            try:
                conn = psycopg2.connect(dbname="postgres", user="efflab", host=str(sock))
                break
            except psycopg2.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("postgres did not start: "
                                       + proc.stderr.read().decode()[-1000:]) from None
                time.sleep(0.2)
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE gradebook")
        conn.close()
        yield f"postgresql+psycopg2://efflab@/gradebook?host={sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def test_grading_with_a_postgresql_gradebook(tmp_path, postgres_url):
    from nbgrader.api import Gradebook

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(build.source_notebook(LAB), incoming / "ada.ipynb")
    nbformat.write(nbformat.read(build.LABS / LAB / f"{LAB}.ipynb", 4), incoming / "bob.ipynb")
    course = tmp_path / "course"
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB, str(incoming),
                           "--course", str(course), "--db", postgres_url],
                          cwd=build.ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (course / "gradebook.db").exists(), "the SQLite default was used instead"
    with Gradebook(postgres_url, COURSE_ID) as gb:
        scores = {s.student.id: s.score for s in gb.assignment_submissions(LAB)}
        assert {s.id for s in gb.students} == {"ada", "bob"}
    assert scores == {"ada": FULL, "bob": 0}
    with open(course / "reports" / LAB / "grades.csv") as f:
        rows = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    assert rows == {"ada": FULL, "bob": 0}
