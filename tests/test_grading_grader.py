"""The grading command on a corpus of hostile submissions: grades, reasons, an untouched
gradebook and repository, feedback without hidden tests, and resuming after kill -9."""

import contextlib
import copy
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import autograde_server
from lookup import lookup_notebook

from autograde.course import build
from autograde.grading import folder as grading_folder
from autograde.grading import outcome
from autograde.grading.grader import Grader
from autograde.grading.preflight import SandboxError
from autograde.grading.settings import Settings
from autograde.nbgrader_seam.command import COURSE_ID
from autograde.sandbox.policy import isolation_problem
from efflib.latency import busy

LAB = "lab01_layers"
FULL = 25  # Lab 01's autograded points (the 2-point reflection is graded by hand)
pytestmark = [pytest.mark.course,
              pytest.mark.skipif(isolation_problem() is not None,
                                 reason=f"no isolation here: {isolation_problem()}")]


def _solution():
    return build.source_notebook(LAB)


def _blank():
    return nbformat.read(build.LABS / LAB / f"{LAB}.ipynb", 4)


def _prepend_to_first_answer(code: str, base=_solution):
    nb = base()
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = code + "\n" + cell.source
            return nb
    raise AssertionError("no answer cell")


def _replace_answer(grade_id: str, code: str):
    nb = _solution()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = code
    return nb


def _edit_test_cell(how: str):
    nb = _solution()
    i = next(i for i, c in enumerate(nb.cells)
             if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_linear_test")
    if how == "delete":
        del nb.cells[i]
    elif how == "duplicate":
        twin = copy.deepcopy(nb.cells[i])
        twin.id = "twin"
        nb.cells.insert(i, twin)
    elif how == "rename":
        nb.cells[i].metadata["nbgrader"]["grade_id"] = "q1_free_points"
        nb.cells[i].metadata["nbgrader"]["points"] = 100
        nb.cells[i].source = "pass"
    return nb


def _flip_flag(grade_id: str):
    """An honest solution whose answer cell was marked graded, with points, by accident."""
    nb = _solution()
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.metadata["nbgrader"].update(grade=True, points=5)
    return nb


REPO = build.ROOT
SNOOP = f"""
import os
for path in [{str(REPO / 'solutions' / LAB / (LAB + '.py'))!r}, {str(REPO / 'build')!r},
             os.environ.get('COURSE', ''), '/root/.ssh']:
    try:
        got = os.listdir(path) if os.path.isdir(path) else open(path).read()[:80]
        print('READ' if got else 'DENIED (empty)', path, got)
    except Exception as e:
        print('DENIED', path, type(e).__name__)
for path in [{str(REPO / 'PWNED')!r}, '/tmp/../{REPO.name}-pwned']:
    try:
        open(path, 'w').write('x'); print('WROTE', path)
    except Exception as e:
        print('DENIED', path, type(e).__name__)
import socket
try:
    socket.create_connection(('1.1.1.1', 80), timeout=2); print('NETWORK')
except OSError as e:
    print('DENIED network', type(e).__name__)
"""

# looks everywhere it can for what the fixture hid around it (other students' submissions,
# the course, another course's folder), and leaves files where another kernel could find them
CANARY = "efflab-canary"
PEEK = f"""
import os
found = []
for top, dirs, files in os.walk('/'):
    if top.startswith(('/proc', '/sys', '/usr')):  # the system's files: not where courses live
        dirs[:] = []
        continue
    found += [os.path.join(top, f) for f in files + dirs if f.startswith({CANARY!r})]
print('FOUND', found or 'nothing')
for place in ['/run/lock', '/dev/shm', '/var/tmp', '/tmp', '/srv']:
    try:
        open(os.path.join(place, {CANARY!r} + '-left-by-peek'), 'w').write('x')
    except OSError:
        pass
"""
# writes a forged line into every file descriptor it inherited that is not a socket
FORGE_LOG = """
import os, stat
for fd in range(1024):
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, b'\\nFORGED-GRADER-LINE: all students scored 0\\n')
    except OSError:
        pass
"""
# holds as many threads as it can get for a while: another kernel must not be starved
HOG = """
import threading, time
held = []
try:
    while len(held) < 4000:
        t = threading.Thread(target=time.sleep, args=(15,), daemon=True)
        t.start()
        held.append(t)
except RuntimeError:
    pass
print('HELD', len(held), 'threads')
time.sleep(15)
"""
# fills every byte of its folder it can, in files under the per-file limit
FILL = """
import os
chunk, total = b'x' * (8 << 20), 0
try:
    for i in range(200):
        with open(f'fill{i}.bin', 'wb') as f:
            for _ in range(6):
                f.write(chunk)
                f.flush()
                total += 8
except OSError:
    pass
print('FILLED', total, 'MB')
for i in range(200):
    if os.path.exists(f'fill{i}.bin'):
        os.remove(f'fill{i}.bin')
"""

# scripts in every place a student's words or outputs reach a page a person opens
XSS_MARKDOWN = ('<img src=x onerror="window.EFFLAB_XSS=1"> [link](javascript:window.EFFLAB_XSS=2) '
                '<script>window.EFFLAB_XSS=3</script> '
                '$\\text{<script>window.EFFLAB_XSS=4</script>}$')
XSS_OUTPUTS = """
from IPython.display import HTML, SVG, Javascript, display
display(HTML('<img src=x onerror="window.EFFLAB_XSS=5">'))
display(Javascript('window.EFFLAB_XSS=6'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="window.EFFLAB_XSS=7"></svg>'))
"""
ACTIVE = re.compile(r"<(img|svg|a|body|iframe)\b[^>]*(onerror|onload|javascript:)|"
                    r"<script\b[^>]*>[^<]*EFFLAB_XSS", re.I)


def _xss():
    nb = _prepend_to_first_answer(XSS_OUTPUTS)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = XSS_MARKDOWN  # the hand-graded reflection
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(XSS_MARKDOWN))
    return nb


PATCH_CHECKS = ("import autograde.checks.lab01_layers as L\nfor n in dir(L):\n"
                "    if n.startswith('check_'): setattr(L, n, lambda *a, **k: None)")
DROP_CHECKS = ("import ast\nclass Drop(ast.NodeTransformer):\n    def visit_Expr(self, node):\n"
               "        return ast.Pass() if 'check_' in ast.dump(node) else node\n"
               "get_ipython().ast_transformers.append(Drop())")
SWALLOW = "get_ipython().showtraceback = lambda *a, **k: None"  # errors never reach the output
# the kernel's side of the judge answers every request with a forged reply, and says so
FORGE = ("import autograde.judging.kernel_side as K\n"
         "def forged(request, namespace):\n"
         "    print('FORGED', request.get('op'))\n"
         "    return {'value': {'__t': 'tuple', 'v': []}, 'called': [], 'passed': True}\n"
         "K.answer = forged")
PATCH_ROUND = "import builtins\nbuiltins.round = lambda x, n=None: x"

DROP_WATCH = """\
import contextlib
import torch.nn.functional as F
import autograde.judging.kernel_side as kernel_side

class Claims:  # says einsum ran, and nothing was refused
    called = {"einsum"}

@contextlib.contextmanager
def no_watch(spec):
    yield Claims()

kernel_side.from_spec = no_watch  # the kernel's watch, replaced before the judged calls

def conv2d_einsum(x, w, stride=1, padding=0):
    return F.conv2d(x, w, stride=stride, padding=padding)
"""

CORPUS = {
    "solution": (_solution, "graded", FULL, ""),
    "blank": (_blank, "graded", 0, "NotAnswered: linear_forward"),  # the check's own words
    "os_exit": (lambda: _prepend_to_first_answer("import os; os._exit(3)"), "graded", 0,
                "DeadKernelError"),
    "sys_exit": (lambda: _prepend_to_first_answer("import sys; sys.exit(3)"), "graded",
                 FULL - 2, "NameError"),
    "hang": (lambda: _prepend_to_first_answer("import time\nwhile True: time.sleep(1)"),
             "graded", FULL - 2, "NameError"),
    "memory_bomb": (lambda: _prepend_to_first_answer(
        "hog = []\nwhile True: hog.append(bytearray(50_000_000))"), "graded", 0, "Kernel"),
    "huge_output": (lambda: _prepend_to_first_answer(
        "print('x' * 30_000_000)\nfor i in range(200_000): print(i)"), "graded", FULL, ""),
    "deleted_test": (lambda: _edit_test_cell("delete"), "graded", FULL - 2,
                     "test cells deleted (0 points): q1_linear_test"),
    "duplicated_test": (lambda: _edit_test_cell("duplicate"), "graded", FULL,
                        "removed a duplicate of cell q1_linear_test"),
    "renamed_test": (lambda: _edit_test_cell("rename"), "graded", FULL - 2,
                     "'q1_free_points' is not part of the lab"),
    "flipped_grade_flag": (lambda: _flip_flag("q1_linear"), "graded", FULL,
                           "cell q1_linear's grading settings were edited: restored"),
    "snoop": (lambda: _prepend_to_first_answer(SNOOP), "graded", FULL, ""),
    "peek": (lambda: _prepend_to_first_answer(PEEK), "graded", FULL, ""),
    "forge_log": (lambda: _prepend_to_first_answer(FORGE_LOG), "graded", FULL, ""),
    "process_hog": (lambda: _prepend_to_first_answer(HOG), "graded", FULL, ""),
    "disk_filler": (lambda: _prepend_to_first_answer(FILL), "graded", FULL, ""),
    "xss": (_xss, "graded", FULL, ""),
    # tricks that make a failing test look passed: on a blank lab they must earn nothing
    "patched_checks": (lambda: _prepend_to_first_answer(PATCH_CHECKS, _blank), "graded", 0,
                       "NotAnswered"),
    "ast_transformer": (lambda: _prepend_to_first_answer(DROP_CHECKS, _blank), "graded", 0,
                        "NotAnswered"),
    "swallowed_errors": (lambda: _prepend_to_first_answer(SWALLOW, _blank), "graded", 0,
                         "NotAnswered"),
    "forged_answers": (lambda: _prepend_to_first_answer(FORGE, _blank), "graded", 0,
                       "CheckFailed"),
    "hang_in_answer": (lambda: _replace_answer("q1_linear", (
        "def linear_forward(x, W, b):\n    while True:\n        pass")), "graded", FULL - 2,
        "q1_linear_test: CheckFailed"),
    # the answer runs in the clean room, which dies with it and starts afresh for the next
    # test: the student's kernel and their other answers are untouched
    "exit_in_answer": (lambda: _replace_answer("q1_linear", (
        "def linear_forward(x, W, b):\n    import os\n    os._exit(1)")), "graded", FULL - 2,
        "q1_linear_test: CheckFailed"),
    "efflib_answer": (lambda: _replace_answer("q2_conv_size", (
        "import efflib\ndef conv_output_size(size, kernel, stride=1, padding=0, dilation=1):\n"
        "    return efflib.conv_output_size(size, kernel, stride, padding, dilation)")),
        "graded", FULL - 2, "GradedAnswerError"),
    "watch_dropped": (lambda: _replace_answer("q6_einsum", DROP_WATCH), "graded", FULL - 3,
                      "q6_einsum_test: CheckFailed"),
    "always_equal": (lambda: _replace_answer("q1_linear", (
        "class Anything:\n    def __eq__(self, other): return True\n"
        "def linear_forward(x, W, b):\n    return Anything()")), "graded", FULL - 2, ""),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The corpus graded as an instructor would: submissions and course in a folder of their
    own outside the temporary folders (/srv), beside another course's folder, with the
    grader's output captured at the file-descriptor level."""
    base = Path(tempfile.mkdtemp(prefix="efflab-test-", dir=_outside_tmp()))
    incoming, course, other = base / "incoming", base / "course", base / "other-course"
    for folder in (incoming, course, other):
        folder.mkdir()
        (folder / f"{CANARY}-{folder.name}").write_text("secret")
    for name, (make, *_) in CORPUS.items():
        nbformat.write(make(), incoming / f"{name}.ipynb")
    (incoming / "broken.ipynb").write_text("{not json")
    (incoming / "missing").mkdir()
    (incoming / "missing" / "README.txt").write_text("forgot to attach it")
    left_before = _left_canaries()
    # timeouts only a hang reaches (an honest Lab 01 cell takes well under a second), and a
    # cell that hits one is graded again alone before its 0 stands
    grader = Grader(LAB, course, workers=2,
                    settings=Settings(cell_timeout=30, notebook_timeout=300, memory_mb=1500,
                                      disk_mb=200))
    log = base / "grader.log"
    with _fd_output_to(log):
        results = grader.run(incoming, progress=False)
    with open(course / "reports" / LAB / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    yield grader, {r.student: r for r in results}, rows, log.read_text(), left_before
    for path in _left_canaries() - left_before:
        path.unlink()
    shutil.rmtree(base, ignore_errors=True)


def _outside_tmp() -> str:
    Path("/srv").mkdir(exist_ok=True)
    return "/srv"


def _left_canaries() -> set[Path]:
    return {p for place in ["/run/lock", "/dev/shm", "/var/tmp", "/tmp", "/srv"]
            for p in Path(place).glob(f"{CANARY}-left-by-*")}


@contextlib.contextmanager
def _fd_output_to(path: Path):
    """File descriptors 1 and 2 of this process (inherited by workers and kernels) go to
    `path` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


@pytest.mark.parametrize("name", list(CORPUS))
def test_each_submission_gets_what_it_earned(graded, name):
    _, results, rows, *_ = graded
    _, status, score, reason = CORPUS[name]
    row = rows[name]
    assert row["max_score"] == "27"
    assert results[name].status == status
    assert float(row["score"]) == score, row["reason"]
    assert reason in row["reason"]


def test_unreadable_or_missing_notebooks_score_zero_with_a_reason(graded):
    _, results, rows, *_ = graded
    assert results["broken"].status == results["missing"].status == "no-notebook"
    assert "not a readable notebook" in rows["broken"]["reason"]
    assert "no notebook" in rows["missing"]["reason"]
    assert rows["broken"]["score"] == rows["missing"]["score"] == "0"


def test_sandbox_kept_the_snooper_out(graded):
    grader, *_ = graded
    nb = nbformat.read(grader.course / "autograded" / "snoop" / LAB / f"{LAB}.ipynb", 4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "READ" not in text
    assert "WROTE" not in text and "NETWORK" not in text
    assert text.count("DENIED") >= 6
    assert not (REPO / "PWNED").exists()


def _printed(grader, student: str) -> str:
    nb = nbformat.read(grader.course / "autograded" / student / LAB / f"{LAB}.ipynb", 4)
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


def test_a_kernel_sees_no_submission_course_or_other_folder(graded):
    """The kernel's filesystem is an allow-list: a folder the instructor passed on the
    command line, the course and any other folder on the disk are simply not there."""
    grader, *_ = graded
    printed = _printed(grader, "peek")
    assert "FOUND nothing" in printed, printed[-2000:]


def test_nothing_a_kernel_writes_outlives_it(graded):
    """/run/lock, /dev/shm, /tmp and the like are the kernel's own: what it writes there is
    gone with it, so no later kernel can read it."""
    *_, left_before = graded
    assert _left_canaries() == left_before


def test_a_kernel_cannot_write_into_the_graders_output(graded):
    grader, _, _, log, _ = graded
    assert "FORGED-GRADER-LINE" not in log
    assert "FORGED-GRADER-LINE" not in (grader.course / "reports" / LAB / "grades.csv"
                                        ).read_text()


def test_a_cell_that_ran_out_of_time_is_graded_again_alone(graded):
    """The hang is interrupted in the batch and once more when graded alone; the second
    grade stands and the reason says what happened. Nobody else was graded twice."""
    grader, results, rows, *_ = graded
    for name in ("hang", "hang_in_answer"):
        assert "again when graded alone" in rows[name]["reason"], rows[name]["reason"]
    assert "ran out of time" not in rows["solution"]["reason"]


def test_no_script_of_a_student_reaches_a_page(graded, tmp_path):
    """Raw HTML and javascript: links in markdown, HTML/JS/SVG outputs and TeX that smuggles
    tags: none of it is active in the autograded notebook, the feedback page, or the
    formgrader's view of the submission (served by `python -m autograde formgrader`)."""
    grader, *_ = graded
    nb = nbformat.read(grader.course / "autograded" / "xss" / LAB / f"{LAB}.ipynb", 4)
    kinds = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
    assert kinds <= {"text/plain", "image/png", "image/jpeg"}, kinds
    feedback = (grader.course / "feedback" / "xss" / LAB / f"{LAB}.html").read_text()
    assert "EFFLAB_XSS" in feedback  # the words are still there, as text
    assert not ACTIVE.search(feedback), ACTIVE.search(feedback)
    with autograde_server(tmp_path, "formgrader", LAB, "--course", str(grader.course),
                          token="t") as (base, token, _):
        def get(path):
            req = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.read().decode()
        [sub] = [s for s in json.loads(get(f"/formgrader/api/submitted_notebooks/{LAB}/{LAB}"))
                 if s["student"] == "xss"]
        page = get(f"/formgrader/submissions/{sub['id']}/")
    assert "EFFLAB_XSS" in page
    assert not ACTIVE.search(page), ACTIVE.search(page)


def test_a_process_hog_starves_only_itself(graded):
    """Threads count against the kernel's own pids cgroup, not a limit shared by every
    kernel of uid nobody: the hog got many, and everyone graded beside it earned their marks
    (test_each_submission_gets_what_it_earned)."""
    grader, *_ = graded
    held = int(_printed(grader, "process_hog").split("HELD ")[1].split()[0])
    assert 100 <= held < 4000


def test_a_kernel_cannot_fill_the_disk(graded):
    grader, *_ = graded
    filled = int(_printed(grader, "disk_filler").split("FILLED ")[1].split()[0])
    assert 0 < filled <= 200  # the fixture's disk_mb


def test_forged_replies_reached_the_judge_and_earned_nothing(graded):
    """The forgery ran where the judge's requests arrive: every judged cell got its forged
    reply, and each was refused as data rather than taken as a pass."""
    grader, _, rows, *_ = graded
    nb = nbformat.read(grader.course / "autograded" / "forged_answers" / LAB / f"{LAB}.ipynb", 4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id", "")
             .endswith("_test")]
    text = ["".join(o.get("text", "") for o in c.outputs) for c in tests]
    assert all("FORGED get" in t for t in text), text
    assert all(any(o.output_type == "error" for o in c.outputs) for c in tests)
    assert float(rows["forged_answers"]["score"]) == 0


def test_gradebook_is_complete_and_consistent(graded):
    from nbgrader.api import Gradebook

    grader, results, rows, *_ = graded
    with Gradebook(grader.db_url, COURSE_ID) as gb:
        students = {s.id for s in gb.students}
        assert students == set(results)
        for name in results:
            nb = gb.find_submission_notebook(LAB, LAB, name)
            assert sum(g.score or 0 for g in nb.grades) == float(rows[name]["score"])


def test_a_deleted_test_cell_scores_zero_and_waits_for_no_one(graded):
    """nbgrader leaves a missing cell's grade waiting for a person: the grader scores it."""
    from nbgrader.api import Gradebook

    grader, _, rows, *_ = graded
    row = rows["deleted_test"]
    assert row["q1_linear_test"] == "0"
    assert "q1_linear_test" not in row["needs_hand_grading"].split()
    with Gradebook(grader.db_url, COURSE_ID) as gb:
        grades = {g.name: g for g in gb.find_submission_notebook(
            LAB, LAB, "deleted_test").grades}
        assert grades["q1_linear_test"].auto_score == 0
        assert not grades["q1_linear_test"].needs_manual_grade


def test_feedback_hides_hidden_tests(graded):
    grader, *_ = graded
    for name in ("solution", "blank", "hang"):
        html = (grader.course / "feedback" / name / LAB / f"{LAB}.html").read_text()
        assert "hidden=True" not in html and "BEGIN HIDDEN TESTS" not in html
    html = (grader.course / "feedback" / "huge_output" / LAB / f"{LAB}.html")
    assert html.stat().st_size < 10_000_000


# Grading with judging off: every test cell runs in the kernel and only the integrity probe
# stands between a tampering notebook and full marks. No check of the course runs in the
# kernel any more, but `--no-judge` grading and any future @kernel_only check rely on it;
# here it is tested on Lab 01, whose solution earns full marks untampered.
# a post-run hook reads the probe's nonce from its cell and prints a forged "clean" after it
FORGED_VERDICT = PATCH_CHECKS + """
import re
def _forge(result):
    m = re.search(r"_efflab_probe\\('([0-9a-f]+)'", result.info.raw_cell or "")
    if m:
        print(m.group(1), "clean")
get_ipython().events.register("post_run_cell", _forge)"""
PROBED = {
    "patched_checks": (PATCH_CHECKS, "IntegrityError"),
    "ast_transformer": (DROP_CHECKS, "IntegrityError"),
    "swallowed_errors": (SWALLOW, "shell.showtraceback replaced"),
    "patched_builtin": (PATCH_ROUND, "builtin round replaced"),
    "patched_class": ("from IPython.core.interactiveshell import InteractiveShell\n"
                      "InteractiveShell.showtraceback = lambda *a, **k: None",
                      "InteractiveShell.showtraceback replaced"),
    "forged_verdict": (FORGED_VERDICT, "more than one answer to the probe"),
    # after the checks install their brief display: IPython's own do-nothing handler would
    # swallow every failed check, and the checks' handler may not be stretched to others
    "swallowing_handler": ("import autograde.checks.api\n"
                           "get_ipython().set_custom_exc((AssertionError,), None)",
                           "custom exception handlers installed"),
    "stretched_handler": ("import autograde.checks.api\n"
                          "from autograde.checks.notebook import brief_traceback\n"
                          "get_ipython().set_custom_exc((Exception,), brief_traceback)",
                          "custom exception handlers installed"),
}


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    incoming = tmp_path_factory.mktemp("probed_in")
    nbformat.write(_solution(), incoming / "clean.ipynb")
    for name, (code, _) in PROBED.items():
        nbformat.write(_prepend_to_first_answer(code), incoming / f"{name}.ipynb")
    nbformat.write(_replace_answer("q1_linear", (
        "import sys\ndef linear_forward(x, W, b):\n    sys.displayhook(100)\n"
        "    raise ValueError('not done')")), incoming / "displayhook.ipynb")
    grader = Grader(LAB, tmp_path_factory.mktemp("probed"), workers=2,
                    settings=Settings(cell_timeout=30, notebook_timeout=150, judge=False))
    grader.run(incoming, progress=False)
    with open(grader.course / "reports" / LAB / "grades.csv") as f:
        return {r["student"]: r for r in csv.DictReader(f)}, grader.course


def test_a_result_shown_before_the_error_earns_no_partial_credit(probed):
    """nbgrader scores a test cell by its first execute_result when there is one; an answer
    that calls sys.displayhook(100) before failing must still lose the test's points."""
    row = probed[0]["displayhook"]
    assert float(row["score"]) == FULL - 2, row["reason"]
    assert "q1_linear_test: CheckFailed" in row["reason"]


@pytest.mark.parametrize("name", list(PROBED))
def test_the_probe_catches_tampering_in_kernel_run_cells(probed, name):
    rows, course = probed
    assert float(rows["clean"]["score"]) == FULL, rows["clean"]["reason"]
    assert float(rows[name]["score"]) == 0
    assert PROBED[name][1] in rows[name]["reason"]
    # the outcome record says so, for the summary (grading.report), in its own field
    assert outcome.read(course, LAB, name).tampered
    assert outcome.read(course, LAB, "clean").tampered == ""
    assert name in (course / "reports" / LAB / "summary.txt").read_text().split(
        "students with problems:")[1]


def test_summary_is_written(graded):
    grader, results, *_ = graded
    out = grader.course / "reports" / LAB
    assert (out / "summary.png").stat().st_size > 10_000
    text = (out / "summary.txt").read_text()
    assert f"{len(results)} submissions" in text and "q1_linear_test" in text


def test_a_changed_resubmission_is_regraded_alone(tmp_path, capsys):
    """Resuming notices a student's corrected notebook (a content hash in the journal) and
    grades that student again, leaving everyone else as they were."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(_solution(), incoming / "steady.ipynb")
    nbformat.write(_blank(), incoming / "fixer.ipynb")
    grader = Grader(LAB, tmp_path / "course", workers=1,
                    settings=Settings(cell_timeout=60))
    first = {r.student: r for r in grader.run(incoming, progress=False)}
    steady = (grader.journal.folder / "steady.json").read_text()
    nbformat.write(_solution(), incoming / "fixer.ipynb")  # the corrected resubmission
    capsys.readouterr()
    second = {r.student: r for r in grader.run(incoming, progress=False)}
    out = capsys.readouterr().out
    assert "resuming: 1 of 2 already graded" in out and "regrading 1 changed submission" in out
    assert (grader.journal.folder / "steady.json").read_text() == steady  # not regraded
    assert first["fixer"].digest != second["fixer"].digest
    with open(grader.course / "reports" / LAB / "grades.csv") as f:
        scores = {r["student"]: float(r["score"]) for r in csv.DictReader(f)}
    assert scores == {"steady": FULL, "fixer": FULL}


def _hidden_failures(grader: Grader, student: str) -> dict[str, str]:
    nb = nbformat.read(grader.autograded(student), 4)
    return {c.id: o.evalue for c in nb.cells for o in c.get("outputs", [])
            if o.output_type == "error" and c.id.endswith("_test")}


def test_the_same_secret_grades_alike_and_another_draws_other_hidden_cases(tmp_path, capsys):
    """The lookup of the cases a kernel draws at home, graded in two folders with one
    secret (an instructor's own file), then again in the first with another secret: the
    same secret gives the same hidden failures, word for word; the new one regrades the
    student, on other cases."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nb = lookup_notebook(LAB)
    # the student's kernel draws its home cases from a key of its own, new in every
    # process: fixed here, so that both gradings meet the same home draws (a grader case
    # that happens to be among them is answered right, and moves the first failure)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "from autograde.judging import hidden as _h\n_h._PROCESS_KEY = b'one home'"))
    nbformat.write(nb, incoming / "lookup.ipynb")
    spring, autumn = tmp_path / "spring", tmp_path / "autumn"
    spring.write_text("the course's secret for the spring term\n")
    autumn.write_text("the course's secret for the autumn term\n")
    first = Grader(LAB, tmp_path / "one", workers=1, secret_file=spring)
    first.run(incoming, progress=False)
    second = Grader(LAB, tmp_path / "two", workers=1, secret_file=spring)
    second.run(incoming, progress=False)
    home = nbformat.read(first.autograded("lookup"), 4).cells[0]
    assert "_PROCESS_KEY" in home.source and not [
        o for o in home.outputs if o.output_type == "error"], "the home key was not fixed"
    same = _hidden_failures(first, "lookup")
    assert len(same) >= 8, same  # a lookup made at home fails the hidden cases
    assert same == _hidden_failures(second, "lookup")
    assert not (tmp_path / "one" / "secret").exists(), "the instructor's file was used"
    capsys.readouterr()
    spring_print = first.journal.read("lookup").secret
    again = Grader(LAB, tmp_path / "one", workers=1, secret_file=autumn)
    again.run(incoming, progress=False)
    assert "regrading 1 submission graded with another secret before" in capsys.readouterr().out
    other = _hidden_failures(again, "lookup")
    assert set(other) == set(same)
    assert sum(other[k] != same[k] for k in same) >= len(same) // 2, (same, other)
    assert again.journal.read("lookup").secret != spring_print


# Lab 03 Q11 answered without training: 200 of the public test images as a nearest-neighbour
# lookup (tests/test_grading_heldout.py measures it): 96% on the test split, far less on
# images it has not seen
MEMORISER = """
loaders = data.digits(seed=0)
x, y = loaders.test.dataset.tensors
t, labels = x[:200].reshape(200, -1), y[:200]
digit_model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(64, 200),
                            nn.Softmax(dim=1), nn.Linear(200, 10, bias=False))
with torch.no_grad():
    digit_model[0].weight.fill_(1.0)
    digit_model[0].bias.zero_()
    digit_model[2].weight.copy_(100 * t)
    digit_model[2].bias.copy_(-50 * (t * t).sum(1))
    digit_model[4].weight.copy_(nn.functional.one_hot(labels, 10).T.float())
digit_model.eval()
"""


def test_a_model_made_of_the_test_images_earns_nothing(tmp_path):
    """The public test split memorised reaches the test split's 95% (96%), which alone
    earned Q11's points; the grader's new handwriting, drawn from the course's secret,
    fails it, and only Q11 is lost."""
    lab = "lab03_architectures"
    nb = build.source_notebook(lab)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "q11_digit_model":
            cell.source = MEMORISER
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    nbformat.write(nb, incoming / "memoriser.ipynb")
    grader = Grader(lab, tmp_path / "course", workers=1,
                    settings=Settings(cell_timeout=120))
    grader.run(incoming, progress=False)
    with open(grader.course / "reports" / lab / "grades.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["q11_digit_model_test"]) == 0, row
    assert "on the grader's own new handwriting" in row["reason"], row["reason"]
    lost = [k for k, v in row.items() if k.endswith("_test") and float(v) == 0]
    assert lost == ["q11_digit_model_test"], lost


def test_resume_after_kill_minus_9(tmp_path):
    """A run killed mid-batch resumes: nothing graded is redone or lost, no kernel is left.
    (This once stalled under load: a garbage-collected zmq context of a finished kernel
    blocked forever in term(); executor.create_kernel_manager now destroys it.)"""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(4):
        nbformat.write(_solution(), incoming / f"s{i}.ipynb")
    course = tmp_path / "course"
    cmd = [sys.executable, "-m", "autograde", "grade", LAB, str(incoming), "--course",
           str(course), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = course / "journal" / LAB
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(journal.glob("*.json"))) < 1:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {p.name: p.read_text() for p in journal.glob("*.json")}
    assert 1 <= len(first) < 4, "kill -9 should land mid-batch"
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    left = subprocess.run(["pgrep", "-f", f"ipykernel_launcher -f {course}"],
                          capture_output=True, text=True).stdout.split()
    assert not left, f"kernels of the killed run were not reaped: {left}"
    stale = list(Path(tempfile.gettempdir()).glob(f"efflab-{proc.pid}-*"))
    assert not stale, f"scratch folders of the killed run were left: {stale}"
    assert f"resuming: {len(first)} of 4 already graded" in done.stdout
    for name, text in first.items():  # graded before the kill: kept, not redone
        assert (journal / name).read_text() == text
    with open(course / "reports" / LAB / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["student"] for r in rows) == ["s0", "s1", "s2", "s3"]
    assert all(float(r["score"]) == FULL for r in rows)
    assert all(json.loads(p.read_text())["status"] == "graded" for p in journal.glob("*.json"))


def _flaky_kernelspec(counter: Path, fail_on: set[int]):
    """A kernelspec writer for the grader: the sandbox's kernel, except that its n-th start
    (counted in `counter`, from 0) fails as a broken sandbox would, for n in `fail_on`."""
    from autograde.sandbox import kernel

    def write(jupyter_dir: Path) -> Path:
        spec = kernel.write_kernelspec(jupyter_dir)
        launcher = (f"import os, sys\np = {str(counter)!r}\n"
                    "n = int(open(p).read()) if os.path.exists(p) else 0\n"
                    "open(p, 'w').write(str(n + 1))\n"
                    f"if n in {sorted(fail_on)!r}:\n"
                    "    print('unshare: cannot mount /proc', file=sys.stderr)\n"
                    "    sys.exit(1)\n"
                    f"os.execv(sys.executable, [sys.executable, '-m', {kernel.MODULE!r}, "
                    "sys.argv[1]])\n")
        argv = [sys.executable, "-c", launcher, "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({**json.loads(
            (spec / "kernel.json").read_text()), "argv": argv}))
        return spec
    return write


def test_a_sandbox_that_cannot_start_stops_the_run_before_anyone_is_scored(tmp_path,
                                                                            monkeypatch):
    incoming = tmp_path / "in"
    incoming.mkdir()
    nbformat.write(_solution(), incoming / "alice.ipynb")
    monkeypatch.setattr(grading_folder, "write_kernelspec",
                        _flaky_kernelspec(tmp_path / "starts", set(range(99))))
    grader = Grader(LAB, tmp_path / "course", workers=1)
    with pytest.raises(SandboxError, match="could not start a kernel.*cannot mount /proc"):
        grader.run(incoming, progress=False)
    assert not grader.journal.done("alice")
    assert not (tmp_path / "course" / "reports").exists()


def test_a_kernel_that_fails_to_start_is_retried_then_reported_not_scored(tmp_path,
                                                                         monkeypatch):
    """Start 0 is the preflight; starts 1 and 2 (alice, then her retry) fail: she is
    'not-graded' (the grader's trouble, not her score), with the reason, and the next run
    grades her."""
    incoming = tmp_path / "in"
    incoming.mkdir()
    nbformat.write(_solution(), incoming / "alice.ipynb")
    counter = tmp_path / "starts"
    monkeypatch.setattr(grading_folder, "write_kernelspec", _flaky_kernelspec(counter, {1, 2}))
    grader = Grader(LAB, tmp_path / "course", workers=1)
    [first] = grader.run(incoming, progress=False)
    assert counter.read_text() == "3"  # the preflight, alice, alice once more
    assert first.status == "not-graded"
    assert "could not start a kernel" in first.reason and "twice" in first.reason
    assert "cannot mount /proc" in first.reason
    [second] = grader.run(incoming, progress=False)
    assert second.status == "graded"
    with open(grader.course / "reports" / LAB / "grades.csv") as f:
        assert float(next(csv.DictReader(f))["score"]) == FULL


def test_a_solution_graded_beside_busy_processes_earns_every_mark(tmp_path):
    """A grade never depends on how busy the machine is: four processes spin on the two
    cores while a solution is graded with the grader's default timeouts."""
    incoming = tmp_path / "in"
    incoming.mkdir()
    nbformat.write(_solution(), incoming / "busy.ipynb")
    with busy(4):
        [result] = Grader(LAB, tmp_path / "course", workers=1).run(incoming, progress=False)
    assert result.status == "graded" and "ran out of time" not in result.reason
    with open(tmp_path / "course" / "reports" / LAB / "grades.csv") as f:
        assert float(next(csv.DictReader(f))["score"]) == FULL


def test_database_url_and_loud_warning_without_isolation(tmp_path, monkeypatch, capsys):
    """--db takes any SQLAlchemy URL; where isolation is impossible grading says so loudly."""
    import autograde.grading.grader as G

    db = tmp_path / "elsewhere" / "book.db"
    db.parent.mkdir()
    incoming = tmp_path / "in"
    (incoming / "nobody_home").mkdir(parents=True)  # no notebook: nothing is executed
    grader = Grader(LAB, tmp_path / "course", workers=1, db_url=f"sqlite:///{db}")
    monkeypatch.setattr(G, "isolation_problem", lambda: "pretend this is macOS")
    results = grader.run(incoming, progress=False)
    assert "student code will NOT be isolated: pretend this is macOS" in capsys.readouterr().err
    assert results[0].status == "no-notebook"
    assert db.stat().st_size > 0 and not (tmp_path / "course" / "gradebook.db").exists()


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown lab 'lab99'"):
        Grader("lab99", tmp_path)
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", LAB,
                           str(tmp_path / "nowhere"), "--course", str(tmp_path / "c")],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "no submissions at" in done.stderr
