"""A student's session in a real browser: JupyterLab opens Lab 01, a cell runs, its plot
shows once, a failed check is one short message, Validate sums up, instructor menus are
absent. Chromium (Debian's) and playwright come from `make browser-setup`; `make
test-browser` runs this, and .ci/run calls it."""

import json
import os
import re
import time
from pathlib import Path

import pytest
from conftest import autograde_server

from autograde import build

pytestmark = pytest.mark.browser
CHROMIUM = Path(os.environ.get("EFFLAB_CHROMIUM", "/usr/bin/chromium"))
LAB = "lab01_layers"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m autograde lab` on a fresh work folder, as `make lab` starts it."""
    tmp = tmp_path_factory.mktemp("browser")
    with autograde_server(tmp, "lab", f"--work={tmp / 'work'}") as (base, token, _):
        yield base, token


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - the browser extra

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make browser-setup`"
    base, token = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/lab/tree/{LAB}/{LAB}.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                               ".jp-mod-idle, #jp-main-statusbar", timeout=60_000)
        yield page
        browser.close()


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
    assert "Check failed (Q1):" in out and "not implemented yet" in out
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


def test_validate_sums_up(page):
    page.get_by_role("button", name="Validate").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=180_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog')?.innerText"
                           ".includes('Validating')", timeout=180_000)
    text = dialog.inner_text()
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
