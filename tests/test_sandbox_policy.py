"""autograde.sandbox.policy: limits, the mount plan and the kernel's environment, tested
without root (the plan is data; tests/test_grading_grader.py runs it for real)."""

import os
import resource
from dataclasses import replace
from pathlib import Path

from autograde.grading.settings import Settings
from autograde.sandbox import policy
from autograde.sandbox.policy import Policy, isolation_problem, kernel_env, mount_plan


def test_policy_travels_through_the_environment():
    p = Policy(memory_mb=123, cpu_seconds=7, disk_mb=512, hide=["/course"])
    env = p.to_env(Path("/tmp/efflab-1-s-x"))
    assert env["EFFLAB_SCRATCH"] == "/tmp/efflab-1-s-x"
    assert Policy.from_env(env) == p


def test_limits_leave_memory_and_processes_to_cgroups_where_there_are_some():
    p = Policy(memory_mb=100, cpu_seconds=9, disk_mb=512, file_mb=2, processes=5)
    with_cgroups = dict(p.rlimits(memory_cgroup=True, pids_cgroup=True))
    assert with_cgroups[resource.RLIMIT_CPU] == 9
    assert with_cgroups[resource.RLIMIT_FSIZE] == 2 * 2**20
    assert with_cgroups[resource.RLIMIT_CORE] == 0
    # per-uid limits are shared by every kernel of uid nobody: never set beside a cgroup
    assert resource.RLIMIT_AS not in with_cgroups and resource.RLIMIT_NPROC not in with_cgroups
    without = dict(p.rlimits(memory_cgroup=False, pids_cgroup=False))
    assert without[resource.RLIMIT_AS] == 100 * 2**20 and without[resource.RLIMIT_NPROC] == 5


def _sources(steps):
    """What each bind mount of the plan shows, and where."""
    return {s[-1]: s[-2] for s in steps if s[:2] in (("mount", "--rbind"), ("mount", "--bind"))}


def test_mount_plan_is_an_allow_list():
    scratch = Path("/tmp/efflab-1-alice-x")
    steps = mount_plan(Settings().policy(hide=["/srv/course"]), scratch)
    root = policy.ROOT
    shown = _sources(steps)
    allowed = {os.path.realpath(p) for p in [*policy.SYSTEM, *policy.visible_code()]}
    allowed |= {f"/dev/{d}" for d in policy.DEVICES} | {str(scratch)}
    assert set(shown.values()) <= allowed, set(shown.values()) - allowed
    assert all(target.startswith(root + "/") for target in shown)
    # the course, the submissions' folders, /run, /home: none of it is shown
    for path in ["/srv/course", "/run", "/home", "/var", str(policy.REPO / "solutions"),
                 str(policy.REPO / "tests"), str(policy.REPO)]:
        assert path not in shown.values()
    # everything shown is read-only but the scratch folder
    read_only = {s[-1] for s in steps if s[:3] == ("mount", "-o", "remount,bind,ro")}
    binds = {t for t in shown if not t.startswith(root + "/dev/")}
    assert binds - read_only == {root + str(scratch)}
    # private /tmp, /dev/shm and /proc; the secrets hidden again; entered last
    for path in ["/tmp", "/dev/shm"]:
        i = steps.index(("mkdir", root + path))
        assert steps[i + 1][:3] == ("mount", "-t", "tmpfs")
        assert f"size={Settings().policy(hide=[]).disk_mb}m" in steps[i + 1][4]
    assert ("mount", "-t", "proc", "proc", root + "/proc") in steps
    # code that lives under /tmp (a CI checkout) is shown inside the private /tmp, not
    # covered by it
    for path in policy.visible_code():
        assert steps.index(("mkdir", root + path)) > steps.index(("mkdir", root + "/tmp"))
    hidden = [s[1] for s in steps if s[0] == "hide"]
    assert root + "/srv/course" in hidden and root + str(policy.REPO / "solutions") in hidden
    assert steps[-1] == ("chroot", root)


def test_code_behind_a_link_is_shown_at_both_places(tmp_path, monkeypatch):
    """A venv reached through a symbolic link (a CI checkout) must exist inside at the path
    Python uses and at the real one its files resolve to."""
    real = tmp_path / "real-venv"
    real.mkdir()
    (tmp_path / "venv").symlink_to(real)
    monkeypatch.setattr(policy.sys, "prefix", str(tmp_path / "venv"))
    shown = policy.visible_code()
    assert str(real) in shown and str(tmp_path / "venv") in shown
    steps = mount_plan(Settings().policy(hide=[]), Path("/tmp/efflab-1-s"))
    assert _sources(steps)[policy.ROOT + str(tmp_path / "venv")] == str(real)


def test_kernel_environment_carries_nothing_of_the_graders(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "secret")
    monkeypatch.setenv("EFFLAB_GRADER_PID", "4242")
    env = kernel_env(replace(Settings().policy(hide=[]), threads=1), Path("/tmp/efflab-1-s"))
    assert "PGPASSWORD" not in env and "EFFLAB_GRADER_PID" not in env
    assert env["HOME"] == "/tmp/efflab-1-s" and env["OMP_NUM_THREADS"] == "1"


def test_isolation_problem_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(policy.sys, "platform", "darwin")
    assert "Linux" in isolation_problem()
    monkeypatch.setattr(policy.sys, "platform", "linux")
    monkeypatch.setattr(policy.os, "geteuid", lambda: 1000)
    assert "root" in isolation_problem()
    monkeypatch.setattr(policy.os, "geteuid", lambda: 0)
    monkeypatch.setattr(policy.shutil, "which", lambda name: None)
    assert "unshare" in isolation_problem()
