"""autograde.sandbox.policy: limits, the mount plan and the kernel's environment, tested
without root (the plan is data; tests/test_grading_grader.py runs it for real)."""

import resource
import sys
from pathlib import Path

from autograde.sandbox import policy
from autograde.sandbox.policy import Policy, isolation_problem, kernel_env, mount_plan


def test_policy_travels_through_the_environment():
    p = Policy(memory_mb=123, cpu_seconds=7, hide=["/course"])
    env = p.to_env(Path("/tmp/efflab-1-s-x"))
    assert env["EFFLAB_SCRATCH"] == "/tmp/efflab-1-s-x"
    assert Policy.from_env(env) == p


def test_limits_cap_memory_by_address_space_only_without_a_cgroup():
    p = Policy(memory_mb=100, cpu_seconds=9, file_mb=2, processes=5)
    with_cgroup = dict(p.rlimits(memory_cgroup=True))
    assert with_cgroup[resource.RLIMIT_CPU] == 9
    assert with_cgroup[resource.RLIMIT_FSIZE] == 2 * 2**20
    assert with_cgroup[resource.RLIMIT_NPROC] == 5 and with_cgroup[resource.RLIMIT_CORE] == 0
    assert resource.RLIMIT_AS not in with_cgroup
    assert dict(p.rlimits(memory_cgroup=False))[resource.RLIMIT_AS] == 100 * 2**20


def test_mount_plan_hides_secrets_and_keeps_what_the_kernel_needs():
    scratch = Path("/tmp/efflab-1-alice-x")
    steps = mount_plan(Policy(hide=["/srv/course"]), scratch)
    hidden = [s[1] for s in steps if s[0] == "hide"]
    for path in ["/tmp", "/root", "/home", "/var/tmp", "/srv/course",
                 *policy.repository_secrets()]:
        assert path in hidden, f"{path} is not hidden"
    assert str(policy.REPO / "solutions") in hidden

    def index(step):
        return steps.index(step)

    first_shared = index(("hide", "/tmp"))
    for i, kept in enumerate([sys.base_prefix, sys.prefix, str(policy.REPO)]):
        aside = f"{policy.STASH}/.efflab-keep{i}"
        # set aside before /tmp is hidden, put back after, and before the secrets go
        assert index(("mount", "--bind", kept, aside)) < first_shared
        back = index(("mount", "--move", aside, kept))
        assert first_shared < back < index(("hide", policy.repository_secrets()[0]))
    # the scratch folder comes back last, over anything hidden above it
    assert steps[-1] == ("mount", "--move", f"{policy.STASH}/.efflab-keep3", str(scratch))
    assert index(("hide", "/srv/course")) < len(steps) - 1


def test_kernel_environment_carries_nothing_of_the_graders(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "secret")
    monkeypatch.setenv("EFFLAB_COURSE_ROOT", "/srv/course")
    env = kernel_env(Policy(threads=1), Path("/tmp/efflab-1-s"))
    assert "PGPASSWORD" not in env and "EFFLAB_COURSE_ROOT" not in env
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
