"""A course on a real JupyterHub, end to end: `hub setup` for an instructor and two
students (real local accounts), `hub serve`, the lab released through nbgrader's
exchange, each student fetching, editing and submitting it from the Assignment List in
Chromium, `hub collect`, `python -m autograde grade`, `hub return`, and each student
reading their own feedback in their browser and nothing of the other's. It creates
accounts, so it needs root (CI runs as root); `make test-hub` runs it and .ci/run calls
it. The hub, every server it started and the accounts are gone afterwards, even when a
step fails."""

import contextlib
import csv
import html
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from autograde.course import build
from autograde.hub.course import HubCourse
from autograde.hub.serve import free_port

pytestmark = [pytest.mark.hub,
              pytest.mark.skipif(os.geteuid() != 0, reason="creates local accounts: root only")]
LAB = "lab01_layers"
ANSWER = ('def linear_forward(x, W, b):\n'
          '    """Linear layer: x (n, c_i), W (c_o, c_i), b (c_o,) -> (n, c_o)."""\n'
          '    return x @ W.T + b  # (n, c_o)\n')


@dataclass
class Course:
    """The hub course under test and what its round trip left behind."""

    root: Path                       # holds hub/ and grading/, readable by the accounts
    accounts: dict[str, str]         # role (prof, alice, bob) -> account name
    passwords: dict[str, str]
    base: str = ""                   # the hub's URL
    facts: dict = field(default_factory=dict)

    @property
    def hub(self) -> Path:
        return self.root / "hub"

    @property
    def grading(self) -> Path:
        return self.root / "grading" / LAB

    def home(self, role: str) -> Path:
        return Path("/home") / self.accounts[role]


def autograde(*args: str, timeout: float = 1800) -> str:
    """`python -m autograde ARGS` as the instructor runs it (here: root); its output."""
    done = subprocess.run([sys.executable, "-m", "autograde", *args], cwd=build.ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"autograde {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def as_account(name: str, *cmd: str) -> subprocess.CompletedProcess:
    """A command run as the local account `name` (the other student, in the isolation
    checks)."""
    return subprocess.run(["runuser", "-u", name, "--", *cmd], capture_output=True,
                          text=True, timeout=60, cwd="/")


def _remove_account(name: str) -> None:
    """Every process of the account killed, then the account and its home removed."""
    for _ in range(10):
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        if subprocess.run(["userdel", "-r", name], capture_output=True).returncode in (0, 6):
            return  # 6: no such account
        time.sleep(0.5)


def _stop_hub(server: subprocess.Popen) -> None:
    """`hub serve` stopped as a process manager stops it, with SIGTERM (it stops JupyterHub,
    which stops the servers it started and its proxy; SIGINT may be ignored, as in a job a
    shell started in the background); whatever is left of it after 90 s, killed."""
    try:
        family = psutil.Process(server.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if server.poll() is None:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=90)
    if server.poll() is None:
        server.kill()
    for process in family:  # JupyterHub runs in a session of its own
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    server.wait()


@pytest.fixture(scope="module")
def course():
    """A set-up, served hub course with fresh accounts; removed afterwards, whatever
    happened."""
    tag = secrets.token_hex(3)
    accounts = {role: f"ef{tag}_{role}" for role in ("prof", "alice", "bob")}
    passwords = {role: secrets.token_urlsafe(12) for role in accounts}
    root = Path(tempfile.mkdtemp(prefix="efflab-hub-", dir="/tmp"))
    root.chmod(0o755)
    made, server = [], None
    try:
        for role, name in accounts.items():
            subprocess.run(["useradd", "-m", name], check=True)
            made.append(name)
            subprocess.run(["chpasswd"], input=f"{name}:{passwords[role]}\n", text=True,
                           check=True)
        said = autograde("hub", "setup", str(root / "hub"), "--instructor", accounts["prof"],
                         "--students", accounts["alice"], accounts["bob"], "--labs", LAB)
        c = Course(root, accounts, passwords)
        c.facts["setup"] = said
        port = free_port()
        log = open(root / "serve.log", "w")  # noqa: SIM115 - closed at the end
        server = subprocess.Popen([sys.executable, "-m", "autograde", "hub", "serve",
                                   str(c.hub), f"--port={port}"], cwd=build.ROOT,
                                  stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        deadline = time.monotonic() + 120
        while "JupyterHub is ready" not in (root / "serve.log").read_text():
            assert server.poll() is None, (root / "serve.log").read_text()
            assert time.monotonic() < deadline, "the hub did not start in 120 s"
            time.sleep(0.3)
        c.base = f"http://127.0.0.1:{port}"
        yield c
    finally:
        left = []
        if server is not None:
            _stop_hub(server)
            log.close()
            left = [f"{p.info['username']}: {' '.join(p.info['cmdline'] or [])[:120]}"
                    for p in psutil.process_iter(["username", "cmdline"])
                    if p.info["username"] in made]
        for name in made:
            _remove_account(name)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"stopping the hub left these running: {left}"


@contextlib.contextmanager
def logged_in(browser, course: Course, role: str):
    """A browser of its own (its own cookies), logged in to the hub as `role`, showing
    the account's JupyterLab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(f"{course.base}/hub/login")
        page.fill("input[name=username]", course.accounts[role])
        page.fill("input[name=password]", course.passwords[role])
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(re.compile(r".*/user/[^/]+/lab.*"), timeout=180_000)
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        yield page
    finally:
        context.close()


def assignment_list(page):
    """The Assignment List, opened from the Nbgrader menu (again: refreshed)."""
    if not page.locator("#released_assignments_list").is_visible():
        page.get_by_text("Nbgrader", exact=True).click()
        page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    page.locator("#released_assignments_list").wait_for(timeout=60_000)
    page.locator("#refresh_assignments_list").click()
    page.wait_for_function("() => !document.querySelector('#released_assignments_list_loading')"
                           "?.checkVisibility()", timeout=60_000)
    return page


def press(page, panel: str, label: str, done: str, seconds: float = 60) -> None:
    """Press `label` on the lab's row of the Assignment List's `panel` (released_,
    fetched_ or submitted_assignments_list), then wait until JavaScript `done` holds."""
    row = page.locator(f"#{panel} .list_item", has_text=LAB).first
    row.wait_for(timeout=60_000)
    row.get_by_role("button", name=label).first.click()
    page.wait_for_function(done, timeout=seconds * 1000)


def submissions_shown(page) -> int:
    return page.evaluate("() => document.querySelectorAll("
                         "'#submitted_assignments_list .list_item').length")


def submit(page) -> None:
    """Submit the fetched lab from the Assignment List; wait until it lists one more
    submission."""
    before = submissions_shown(page)
    press(page, "fetched_assignments_list", "Submit",
          f"() => document.querySelectorAll('#submitted_assignments_list .list_item')"
          f".length > {before}", seconds=120)


def answer_in_the_notebook(page, course: Course, role: str) -> None:
    """Open the fetched notebook, write Q1's answer into its cell as a student types,
    save it, and wait until the file on disk holds it."""
    cells = json.loads((build.LABS / LAB / f"{LAB}.ipynb").read_text())["cells"]
    index = next(i for i, c in enumerate(cells)
                 if c["metadata"].get("nbgrader", {}).get("grade_id") == "q1_linear")
    page.goto(f"{course.base}/user/{course.accounts[role]}/lab/tree/{LAB}/{LAB}.ipynb")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.wait_for(timeout=120_000)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(ANSWER)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    saved = course.home(role) / LAB / f"{LAB}.ipynb"
    deadline = time.monotonic() + 60
    while "x @ W.T + b" not in saved.read_text():
        assert time.monotonic() < deadline, "the edited notebook was not saved"
        time.sleep(0.3)


def formgrader(page, course: Course) -> tuple[str, list]:
    """The instructor's formgrader, opened from the Nbgrader menu: its table of
    assignments, and what its Autograde button's request answers."""
    page.get_by_text("Nbgrader", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Formgrader", exact=True).click()
    frame = page.frame_locator("iframe").first
    frame.locator("td", has_text=LAB).first.wait_for(timeout=60_000)
    table = frame.locator("table").first.inner_text()
    answer = page.evaluate("""async (url) => {
        const xsrf = document.cookie.split('; ').find(c => c.startsWith('_xsrf='));
        const r = await fetch(url, {method: 'POST', headers: {
            'X-XSRFToken': decodeURIComponent((xsrf || '').slice(6))}});
        return [r.status, await r.json()];
    }""", f"{course.base}/user/{course.accounts['prof']}/formgrader/api/submission/{LAB}/"
          f"{course.accounts['alice']}/autograde")
    return table, answer


def feedback_in_the_browser(page, course: Course, role: str) -> tuple[str, Path]:
    """Fetch Feedback in the Assignment List; the page's text as the student's browser
    shows it, and where it landed in the student's home."""
    assignment_list(page)
    press(page, "submitted_assignments_list", "Fetch Feedback",
          "() => [...document.querySelectorAll('#submitted_assignments_list a')]"
          ".some(a => /view feedback/i.test(a.textContent))")
    pages = sorted((course.home(role) / LAB / "feedback").glob(f"*/{LAB}.html"))
    assert len(pages) == 1, pages  # the feedback of the submission that was graded
    rel = pages[0].relative_to(course.home(role))
    page.goto(f"{course.base}/user/{course.accounts[role]}/files/{rel}")
    text = page.locator("body").inner_text()
    if shots := os.environ.get("EFFLAB_HUB_SHOTS"):  # what the student saw, to look at
        page.screenshot(path=os.path.join(shots, f"{role}-feedback.png"), full_page=True)
        Path(shots, f"{role}-feedback.txt").write_text(text)
    return text, pages[0]


@pytest.fixture(scope="module")
def round_trip(course, browser):
    """The whole round trip; what each step left, for the tests to read."""
    facts = course.facts
    facts["released"] = autograde("hub", "release", str(course.hub), LAB)
    with logged_in(browser, course, "alice") as alice, \
            logged_in(browser, course, "bob") as bob:
        for page in (alice, bob):
            assignment_list(page)
            press(page, "released_assignments_list", "Fetch",
                  "() => document.querySelectorAll('#fetched_assignments_list .list_item')"
                  ".length > 0")
        submit(alice)  # a first, blank submission ...
        answer_in_the_notebook(alice, course, "alice")
        assignment_list(alice)
        submit(alice)  # ... replaced by the answered one before the due date
        time.sleep(1.1)
        facts["due"] = datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
        time.sleep(1.1)
        submit(bob)  # blank, and after the due date
        facts["collected"] = autograde("hub", "collect", str(course.hub), LAB)
        with logged_in(browser, course, "prof") as prof:
            facts["formgrader"] = formgrader(prof, course)
        facts["graded"] = autograde("grade", LAB, str(course.hub / "course" / "submitted"),
                                    "--course", str(course.grading), "--workers", "2",
                                    "--due", facts["due"])
        facts["first_grades"] = grades(course)
        facts["returned"] = autograde("hub", "return", str(course.hub), LAB, "--course",
                                      str(course.grading))
        for role, page in (("alice", alice), ("bob", bob)):
            facts[f"{role}_feedback"] = feedback_in_the_browser(page, course, role)
        # a student's browser asking for the other's server, and the page there
        other = f"{course.base}/user/{course.accounts['alice']}/"
        facts["bob_at_alice"] = [bob.goto(other + "lab").status,
                                 bob.goto(other + "files/" + str(
                                     facts["alice_feedback"][1].relative_to(
                                         course.home("alice")))).status]
    resubmit_after_grading(course, facts)
    return facts


def nbgrader_as(course: Course, role: str, *args: str) -> subprocess.CompletedProcess:
    """`nbgrader ARGS` as the student's account, in their home, with their server's
    settings (what their Assignment List runs)."""
    name = course.accounts[role]
    env = [f"HOME={course.home(role)}", f"USER={name}", *(
        f"{k}={v}" for k, v in HubCourse.load(course.hub).role_environ("hub-student", {}).items())]
    return subprocess.run(["runuser", "-u", name, "--", "env", *env,
                           str(course.hub / "edition" / ".venv" / "bin" / "python"), "-m",
                           "nbgrader", *args], cwd=course.home(role), capture_output=True,
                          text=True, timeout=300)


def resubmit_after_grading(course: Course, facts: dict) -> None:
    """Bob answers Q1 after his feedback came back and submits again; the instructor
    collects, grades and returns again: only bob is graded again, and his new feedback
    reaches him."""
    mine = course.home("bob") / LAB / f"{LAB}.ipynb"
    answered = (course.home("alice") / LAB / f"{LAB}.ipynb").read_text()
    mine.write_text(answered.replace("x @ W.T + b", "b + x @ W.T"))  # his own way
    owner = pwd.getpwnam(course.accounts["bob"])
    os.chown(mine, owner.pw_uid, owner.pw_gid)
    graded_alice = course.grading / "autograded" / course.accounts["alice"] / LAB / f"{LAB}.ipynb"
    facts["alice_graded_at"] = graded_alice.stat().st_mtime_ns
    done = nbgrader_as(course, "bob", "submit", LAB)
    assert done.returncode == 0, done.stdout + done.stderr
    facts["recollected"] = autograde("hub", "collect", str(course.hub), LAB)
    facts["regraded"] = autograde("grade", LAB, str(course.hub / "course" / "submitted"),
                                  "--course", str(course.grading), "--workers", "2")
    facts["alice_graded_again_at"] = graded_alice.stat().st_mtime_ns
    facts["rereturned"] = autograde("hub", "return", str(course.hub), LAB, "--course",
                                    str(course.grading))
    done = nbgrader_as(course, "bob", "fetch_feedback", LAB)
    assert done.returncode == 0, done.stdout + done.stderr
    facts["bob_feedback_pages"] = sorted(
        (course.home("bob") / LAB / "feedback").glob(f"*/{LAB}.html"))


def grades(course: Course) -> dict[str, dict[str, str]]:
    with open(course.grading / "reports" / LAB / "grades.csv") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_the_setup_closes_the_homes_and_says_what_students_could_read(course):
    said = course.facts["setup"]
    for name in course.accounts.values():
        assert f"closed {name}'s home" in said
        assert os.stat(Path("/home") / name).st_mode & 0o077 == 0
    assert (course.hub / "exchange").stat().st_mode & 0o7777 == 0o1777
    assert (course.hub / "course").stat().st_uid == pwd.getpwnam(course.accounts["prof"]).pw_uid


def test_the_instructors_formgrader_shows_the_course_and_refuses_to_autograde(round_trip):
    """The instructor's server runs in the course folder: the formgrader lists the lab as
    released with both collected submissions; its Autograde, which would run students'
    code as the instructor's account, is refused with where grading happens."""
    table, (status, answer) = round_trip["formgrader"]
    row = next(line for line in table.splitlines() if line.startswith(LAB))
    assert "released" in row and re.search(r"\b2\b", row), table
    assert status == 200 and answer["success"] is False
    assert "python -m autograde grade lab01_layers" in answer["error"], answer


def test_collect_takes_each_students_latest_submission(course, round_trip):
    said = round_trip["collected"]
    assert "collected 2 submissions" in said, said
    alice = course.hub / "course" / "submitted" / course.accounts["alice"] / LAB
    assert "x @ W.T + b" in (alice / f"{LAB}.ipynb").read_text()  # the second one
    assert (alice / "submission_secret.txt").is_file()


def test_the_grader_grades_what_was_collected_and_marks_the_late_one(course, round_trip):
    rows = round_trip["first_grades"]
    alice, bob = rows[course.accounts["alice"]], rows[course.accounts["bob"]]
    assert alice["status"] == bob["status"] == "graded", rows
    assert alice["q1_linear_test"] == "2" and bob["q1_linear_test"] == "0", rows
    assert float(alice["score"]) == 2 and float(bob["score"]) == 0
    assert alice["late"] == "" and re.fullmatch(r"\d+ min", bob["late"]), rows
    assert "submitted after the due date: 1" in round_trip["graded"]


def test_a_resubmission_after_grading_is_graded_again_alone(course, round_trip):
    """nbgrader's documented flow: a later submission replaces the collected one
    (collect --update), the grader grades what changed, and return sends the new page,
    which the student fetches beside the first."""
    assert round_trip["alice_graded_again_at"] == round_trip["alice_graded_at"]
    bob = grades(course)[course.accounts["bob"]]
    assert bob["q1_linear_test"] == "2" and re.fullmatch(r"\d+ min", bob["late"]), bob
    newer = round_trip["bob_feedback_pages"]
    assert len(newer) == 2, newer  # one folder per submission, named by its time
    texts = [html.unescape(re.sub(r"<[^>]+>", "", page.read_text())) for page in newer]
    assert "b + x @ W.T" in texts[-1] and "b + x @ W.T" not in texts[0], texts[-1][:2000]
    assert re.search(r"q1_linear_test\s+2\.0 / 2\.0", texts[-1]), texts[-1][:2000]


def test_each_student_reads_their_own_feedback_in_the_browser(course, round_trip):
    assert "returned lab01_layers's feedback to 2 students" in round_trip["returned"]
    alice_text, _ = round_trip["alice_feedback"]
    bob_text, _ = round_trip["bob_feedback"]
    total = sum(c["metadata"]["nbgrader"].get("points", 0) for c in json.loads(
        (build.LABS / LAB / f"{LAB}.ipynb").read_text())["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade"))
    assert alice_text.startswith(f"{LAB}: 2.0 / {total:.1f} points"), alice_text[:300]
    assert bob_text.startswith(f"{LAB}: 0.0 / {total:.1f} points"), bob_text[:300]
    assert "q1_linear_test\t2.0 / 2.0" in alice_text and "q1_linear_test\t0.0 / 2.0" in bob_text
    assert "x @ W.T + b" in alice_text and "x @ W.T + b" not in bob_text  # each their own
    assert "linear_forward(x (2, 3), W (4, 3), b (4,)): the answer cell still raises " \
        "NotImplementedError" in bob_text


def test_a_student_cannot_reach_the_other_students_work(course, round_trip):
    """As bob: alice's server refuses him, her home and her submission in the exchange
    are closed to him, and so are the instructor's course folder and the grading folder."""
    assert all(status == 403 for status in round_trip["bob_at_alice"]), round_trip
    bob = course.accounts["bob"]
    exchange = course.hub / "exchange" / "efflab"
    for folder in (course.home("alice"), exchange / "inbound", exchange / "feedback",
                   course.hub / "course", course.hub / "state", course.grading):
        listed = as_account(bob, "ls", str(folder))
        assert listed.returncode != 0 and "Permission denied" in listed.stderr, folder
    inbound = sorted(p.name for p in (exchange / "inbound").iterdir())
    theirs = [n for n in inbound if n.startswith(course.accounts["alice"] + "+")]
    assert len(theirs) == 2  # her two submissions, under names bob cannot list
    assert all(re.fullmatch(rf"{course.accounts['alice']}\+{LAB}\+[^+]+\+[\w-]{{12}}", n)
               for n in theirs), theirs  # each ends in nbgrader's random string
    read = as_account(bob, "cat", str(course.hub / "course" / "submitted"
                                      / course.accounts["alice"] / LAB / f"{LAB}.ipynb"))
    assert read.returncode != 0 and "Permission denied" in read.stderr


def test_students_run_the_edition_not_the_repository(course):
    """A student's kernel imports efflib and the visible checks from the student edition,
    and the repository's grader is not importable."""
    alice = course.accounts["alice"]
    python = course.hub / "edition" / ".venv" / "bin" / "python"
    env_args = ["env", *(f"{k}={v}" for k, v in HubCourse.load(course.hub).environ({}).items())]
    code = ("import efflib, autograde.checks.lab01_layers as c; print(efflib.__file__); "
            "import importlib.util as u; print(u.find_spec('autograde.grading'))")
    done = as_account(alice, *env_args, str(python), "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(course.hub / "edition" / "efflib" / "__init__.py"),
                                        "None"]


def test_each_students_server_runs_as_their_account(course, round_trip):
    """The servers the log-ins started run as the students' own accounts (the fixture
    then checks that stopping the hub stopped them all)."""
    running = {p.info["username"] for p in psutil.process_iter(["username", "cmdline"])
               if "jupyterhub.singleuser" in " ".join(p.info["cmdline"] or [])}
    assert {course.accounts["alice"], course.accounts["bob"]} <= running
