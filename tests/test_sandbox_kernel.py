"""autograde.sandbox.kernel for real (Linux, root): the kernel a student's notebook runs in,
started through a venv reached by a symbolic link, as in some CI checkouts."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from autograde.sandbox.policy import isolation_problem

pytestmark = pytest.mark.skipif(isolation_problem() is not None,
                                reason=f"no isolation here: {isolation_problem()}")

# run by the linked venv's python: starts one sandboxed kernel, runs PROBE in it, prints
# what the kernel printed
STARTER = textwrap.dedent("""
    import os, sys, tempfile
    from pathlib import Path
    from jupyter_client.manager import KernelManager
    from autograde.sandbox.scratch import Scratch
    from autograde.sandbox.kernel import KERNEL_NAME, write_kernelspec
    from autograde.grading.settings import Settings

    jupyter = Path(tempfile.mkdtemp())
    write_kernelspec(jupyter)
    os.environ["JUPYTER_PATH"] = str(jupyter)
    with Scratch("linked", Settings(disk_mb=64).policy(hide=[])) as folder:
        km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc",
                           ip=str(folder / "kernel-ipc"),
                           connection_file=str(folder / "connection.json"))
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        out = []
        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("ERROR " + msg["content"]["ename"] + " " + msg["content"]["evalue"])
        kc.execute_interactive(sys.argv[1], output_hook=hook, timeout=120)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    print("".join(out))
""")

PROBE = textwrap.dedent("""
    import json, os, stat, sys
    import efflib, torch
    fds = {}
    for fd in os.listdir('/proc/self/fd'):
        try:
            fds[fd] = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            pass
    print(json.dumps({
        "prefix": sys.prefix, "uid": os.getuid(), "torch": torch.__version__,
        "sees": {p: os.path.exists(p) for p in CANARIES},
        # ipykernel captures fds 1 and 2 in pipes and keeps copies of the originals
        "std": [os.readlink('/proc/self/fd/0')] + [
            os.readlink(f'/proc/self/fd/{s._original_stdstream_copy}')
            for s in (sys.stdout, sys.stderr)],
        # open files other than its own (in its scratch folder, its cwd)
        "files": sorted(t for t in fds.values() if t.startswith('/') and
                        not t.startswith(('/dev/', '/proc/', os.getcwd()))),
    }))
""")


def test_a_kernel_started_through_a_linked_venv_runs_isolated(tmp_path):
    link = Path(tempfile.mkdtemp(prefix="efflab-link-")) / "venv"
    link.symlink_to(Path(sys.prefix).resolve())
    canaries = [str(tmp_path / "canary"), "/run/lock", "/home", str(Path.cwd() / "tests")]
    (tmp_path / "canary").write_text("secret")
    code = f"CANARIES = {canaries!r}\n" + PROBE
    done = subprocess.run([str(link / "bin" / "python"), "-c", STARTER, code],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EFFLAB_GRADER_PID": str(os.getpid())})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    seen = json.loads(lines[-1])
    assert seen["prefix"] == str(link)  # Python runs from the linked path...
    assert seen["uid"] == 65534 and seen["torch"].startswith("2.")  # ...as nobody, with torch
    assert not any(seen["sees"].values()), seen["sees"]
    assert seen["std"] == ["/dev/null"] * 3  # nothing of the grader's terminal or log
    assert seen["files"] == [], seen["files"]
    link.unlink()
    link.parent.rmdir()
