"""A student's session in a real browser: JupyterLab opens Lab 01, a cell runs, its plot
shows once, a failed check is one short message, Validate sums up, instructor menus are
absent. Chromium (Debian's) and playwright come from `make browser-setup`; `make
test-browser` runs this, and .ci/run calls it."""

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import autograde_server

from autograde.course import build

pytestmark = pytest.mark.browser
LAB = "lab01_layers"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m autograde lab` on a fresh work folder, as `make lab` starts it; yields
    (base URL, token, the work folder)."""
    tmp = tmp_path_factory.mktemp("browser")
    with autograde_server(tmp, "lab", f"--work={tmp / 'work'}") as (base, token, _):
        yield base, token, tmp / "work"


@contextlib.contextmanager
def opened(browser, server, lab: str, width: int = 1400):
    """A page showing `lab`'s notebook alone, in a workspace of its own (JupyterLab would
    otherwise reopen the tabs an earlier page left open)."""
    base, token, _ = server
    page = browser.new_page(viewport={"width": width, "height": 1000})
    try:
        page.goto(f"{base}/lab/workspaces/{lab}-{width}/tree/{lab}/{lab}.ipynb"
                  f"?reset&token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                               ".jp-mod-idle, #jp-main-statusbar", timeout=60_000)
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def page(browser, server):
    with opened(browser, server, LAB) as page:
        yield page


def cell_index(grade_id: str | None = None, first_code: bool = False) -> int:
    """Index of a cell in the released notebook (the student's copy is the same)."""
    cells = json.loads((build.LABS / LAB / f"{LAB}.ipynb").read_text())["cells"]
    for i, c in enumerate(cells):
        if first_code and c["cell_type"] == "code":
            return i
        if grade_id and c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id:
            return i
    raise KeyError(grade_id)


def plot_cell_index() -> int:
    cells = json.loads((build.LABS / LAB / f"{LAB}.ipynb").read_text())["cells"]
    return next(i for i, c in enumerate(cells)
                if c["cell_type"] == "code" and "plots.growth_curves" in "".join(c["source"]))


def run(page, index: int):
    """Select cell `index`, run it with Shift+Enter and wait until it has run."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputArea-prompt")
    deadline = time.monotonic() + 120
    while not re.search(r"\[\d+\]", prompt.inner_text()):
        assert time.monotonic() < deadline, f"cell {index} did not finish"
        time.sleep(0.2)
    return cell


def test_a_cell_runs(page):
    cell = run(page, cell_index(first_code=True))
    assert "torch 2.13.0" in cell.locator(".jp-OutputArea").inner_text()


def test_a_failed_check_is_one_short_message(page):
    run(page, cell_index("q1_linear"))
    out = run(page, cell_index("q1_linear_test")).locator(".jp-OutputArea").inner_text()
    assert "Not answered yet (Q1):" in out and "still raises NotImplementedError" in out
    assert "During handling" not in out and "autograde/checks" not in out
    assert len(out.strip().splitlines()) <= 3, out


def test_the_plot_appears_once(page):
    run(page, cell_index("q4_receptive_field"))
    cell = run(page, plot_cell_index())
    cell.locator(".jp-OutputArea img").first.wait_for(timeout=30_000)
    time.sleep(1)  # anything shown late would appear now
    assert cell.locator(".jp-OutputArea img").count() == 1
    assert "Figure size" not in cell.locator(".jp-OutputArea").inner_text()


def test_only_the_students_nbgrader_menus(page):
    for hidden in ("Formgrader", "Assignment List", "Course List", "Create Assignment"):
        assert page.get_by_text(hidden, exact=True).count() == 0, hidden
    menu = page.get_by_text("Nbgrader", exact=True)
    if menu.count():
        menu.first.click()
        items = page.locator(".lm-Menu-itemLabel").all_inner_texts()
        page.keyboard.press("Escape")
        assert not {"Formgrader", "Assignment List", "Course List"} & set(items), items


def validate(page) -> str:
    """Press Validate, from the toolbar's overflow menu where a narrow window (or wider
    fonts) put it there; the dialog's text once it is done. The toolbar moves its items
    into that menu once it has measured them, so each try looks again."""
    from playwright.sync_api import TimeoutError as Slow  # noqa: PLC0415 - the browser extra

    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    places = (panel.locator(".jp-Toolbar .validate-button"),
              page.locator(".jp-Toolbar-responsive-popup .validate-button"))
    opener = panel.locator(".jp-Toolbar-responsive-opener")
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "no Validate button in the notebook's toolbar"
        shown = next((b.first for b in places if b.first.is_visible()), None)
        popup = page.locator(".jp-Toolbar-responsive-popup").first
        if shown is None and opener.first.is_visible() and not popup.is_visible():
            opener.first.click()
        elif shown is not None:
            with contextlib.suppress(Slow):
                shown.click(timeout=5_000)
                break
        time.sleep(0.2)
    # while it runs (13-36 s), the button says so (nbgrader's own label)
    page.wait_for_function("() => [...document.querySelectorAll('.validate-button')]"
                           ".some(b => b.textContent.includes('Validating'))", timeout=10_000)
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=180_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog')?.innerText"
                           ".includes('Validating')", timeout=180_000)
    return dialog.inner_text()


def test_validate_sums_up(page):
    text = validate(page)
    if os.environ.get("EFFLAB_BROWSER_SHOTS"):
        page.screenshot(path=os.path.join(os.environ["EFFLAB_BROWSER_SHOTS"], "validate.png"))
        Path(os.environ["EFFLAB_BROWSER_SHOTS"], "validate.txt").write_text(text)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0] == "Validation Results" and lines[-1] == "Ok"
    questions = lines[1:-1]  # one line per question of the lab, in its order
    assert questions[0] == "✗ Q1. Linear layer: not answered yet", questions
    assert len(questions) == 9, questions
    assert all(re.match(r"[✗✓·] Q\d+[a-z]?\. .+: ", line) for line in questions), questions
    assert "from autograde" not in text and "During handling" not in text


def test_run_all_on_the_blank_lab_reaches_the_last_cell(page):
    """Answer and test cells are tagged raises-exception (autograde.course.build): Run All goes on
    past the questions not answered yet, as Otter-Grader's checks do."""
    run_all(page, 180)


def run_all(page, seconds: float):
    """Run All Cells from the menu and wait until the last code cell has run; that cell."""
    page.keyboard.press("Escape")
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    last = page.locator(".jp-Notebook .jp-CodeCell").last
    deadline = time.monotonic() + seconds
    while not re.search(r"\[\d+\]", last.locator(".jp-InputArea-prompt").inner_text()):
        assert time.monotonic() < deadline, "Run All stopped before the last cell"
        time.sleep(0.5)
    return last


def test_validate_shows_the_compilers_line(browser, server):
    """Lab 06 with C that does not compile: Validate's line for Q5 carries the compiler's
    first error, with the student's own line number. The window is narrow, so Validate
    sits in the toolbar's overflow menu."""
    lab = "lab06_loops"
    path = server[2] / lab / f"{lab}.ipynb"
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade_id") == "q5_c_source")
    cell["source"] = ('C_CONV = C_CONV_FAST = r"""\n'
                      "void conv2d(const float *x, const float *w, const float *b, float *y,\n"
                      "            int C, int H, int W, int M, int R, int S, int pad) {\n"
                      "    int a = ;\n}\n" '"""\n')
    path.write_text(json.dumps(nb))
    with opened(browser, server, lab, width=640) as lab_page:  # half a laptop screen
        text = validate(lab_page)
    line = next((ln for ln in text.splitlines() if ln.startswith("✗ Q5.")), text)
    assert "C_CONV does not compile: C_CONV.c:3:13: error: expected expression" in line, line


def test_lab08_runs_all_with_the_engine_in_the_students_kernel(browser, server):
    """Lab 08, blank, Run All in JupyterLab: ONNX Runtime and the exporter load in the
    student's kernel, the cells that measure the engine run, and the last cell is reached."""
    lab = "lab08_porting"
    with opened(browser, server, lab) as lab_page:
        last = run_all(lab_page, 240)
        ending = last.locator(".jp-OutputArea").inner_text()
        first = lab_page.locator(".jp-Notebook .jp-CodeCell").first
        deadline, opening = time.monotonic() + 30, ""
        while "onnxruntime" not in opening and time.monotonic() < deadline:
            first.scroll_into_view_if_needed()  # JupyterLab renders cells in view only
            opening = first.locator(".jp-OutputArea").inner_text()
            time.sleep(0.5)
    assert "onnxruntime 1.32.0" in opening, opening
    assert "Finish Q3 and Q6 to see the table." in ending, ending
