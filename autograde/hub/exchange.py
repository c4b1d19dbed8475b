"""A lab out to the students and their feedback back, through nbgrader's exchange:
`hub release`, `hub collect` and `hub return`.

Release and collect run as the instructor's account (the exchange's course folder is
theirs, as nbgrader's permission model has it); `return` reads the grading folder, which
is root's, and so runs as root. What students are handed is the lab's release in labs/,
the same notebook the student edition holds."""

import os
import shutil
import subprocess
from pathlib import Path

from nbgrader.utils import notebook_hash

from autograde.course import build
from autograde.hub.course import HubCourse, HubError

TIMEOUT = 600
FEEDBACK_MODE = 0o644  # students read their page by its secret name; the folder is 0711


def _known(lab: str) -> None:
    if lab not in build.released_labs():
        raise HubError(f"no released lab {lab!r}; labs: {', '.join(build.released_labs())}")


def nbgrader(hub: HubCourse, *args: str, as_instructor: bool = True,
             cwd: Path | None = None) -> str:
    """`nbgrader ARGS` with the instructor's hub settings (course id, exchange, course
    folder), from the hub's environment; run as the instructor's account when this runs
    as root. Its log, or HubError with it."""
    account = hub.accounts()[hub.instructor]
    switch = as_instructor and os.geteuid() == 0 and account.pw_uid != 0
    environment = hub.role_environ("hub-instructor")
    extra = {}
    if switch:
        environment["HOME"] = account.pw_dir
        extra = {"user": account.pw_uid, "group": account.pw_gid,
                 "extra_groups": os.getgrouplist(hub.instructor, account.pw_gid)}
    try:
        done = subprocess.run([str(hub.python), "-m", "nbgrader", *args], cwd=cwd or hub.course,
                              env=environment, capture_output=True, text=True,
                              timeout=TIMEOUT, **extra)
    except subprocess.TimeoutExpired:
        raise HubError(f"nbgrader {args[0]} did not finish in {TIMEOUT} s") from None
    log = done.stdout + done.stderr
    if done.returncode != 0:
        raise HubError(f"nbgrader {' '.join(args)} failed (exit {done.returncode}):\n"
                       f"{log[-3000:]}")
    return log


def release(hub: HubCourse, lab: str) -> Path:
    """The lab's release (labs/LAB) into the course folder and out through the exchange
    (again: replaced, as `nbgrader release_assignment --force` does), its source beside
    it for the instructor's formgrader (their course folder is theirs alone); its
    exchange folder."""
    _known(lab)
    dest = hub.course / "release" / lab
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(build.LABS / lab, dest)
    build.write_sources([lab], hub.course / "source")  # the formgrader lists source/
    account = hub.accounts()[hub.instructor]
    for path in [hub.course / "source", *(hub.course / "source").rglob("*"), dest.parent,
                 dest, *dest.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
    nbgrader(hub, "release_assignment", lab, "--force")
    nbgrader(hub, "db", "assignment", "add", lab)  # the formgrader lists what is in the gradebook
    return hub.exchange / hub.course_id / "outbound" / lab


def collect(hub: HubCourse, lab: str) -> dict[str, str]:
    """Every student's latest submission of `lab` into the course folder's submitted/
    (a newer one replaces an older one collected before: nbgrader's --update);
    {student: its time}."""
    _known(lab)
    nbgrader(hub, "collect", lab, "--update")
    found = {}
    for folder in sorted(hub.submitted.glob(f"*/{lab}")):
        stamp = folder / "timestamp.txt"
        found[folder.parent.name] = stamp.read_text().strip() if stamp.is_file() else ""
    return found


def return_feedback(hub: HubCourse, lab: str, grading: Path) -> list[str]:
    """The feedback pages `grade` wrote in the lab's grading folder back through the
    exchange, each under the name nbgrader derives from its submission's secret, so only
    its student's Assignment List finds it; the students it went to."""
    _known(lab)
    pages = sorted(grading.glob(f"feedback/*/{lab}/{lab}.html"))
    if not pages:
        raise HubError(f"{grading} has no feedback pages of {lab}: grade the collected "
                       f"submissions first (python -m autograde grade {lab} {hub.submitted} "
                       f"--course {grading})")
    through = [p for p in pages if (p.parent / "submission_secret.txt").is_file()
               and (p.parent / "timestamp.txt").is_file()]
    others = sorted({p.parent.parent.name for p in pages} - {p.parent.parent.name
                                                                for p in through})
    args = ["release_feedback", lab, f"--CourseDirectory.root={grading}",
            f"--Exchange.root={hub.exchange}", f"--CourseDirectory.course_id={hub.course_id}"]
    if others:  # graded from elsewhere (a zip): nothing names their page in the exchange
        args.append(f"--CourseDirectory.student_id_exclude={','.join(others)}")
    if through:
        nbgrader(hub, *args, as_instructor=False, cwd=grading)
    out = hub.exchange / hub.course_id / "feedback"
    for page in through:
        secret = (page.parent / "submission_secret.txt").read_text()
        released = out / f"{notebook_hash(secret=secret, notebook_id=lab)}.html"
        released.chmod(FEEDBACK_MODE)
    return [p.parent.parent.name for p in through]
