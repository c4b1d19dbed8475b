"""The student edition (autograde.course.edition): made from a fresh checkout, it holds no answer
of any lab, updates in place without losing anything, and `make lab` and Validate work
from it alone, in a virtual environment of its own."""

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from autograde.course import build, edition

# answer lines of 25 characters or more that are not the answer's own: default handling and
# idioms any code of the kind has (each was checked by hand where it stands)
GENERIC = {
    "stride = kernel if stride is None else stride",  # the lab text's rule, efflib's pools
    "self.body = nn.Sequential(",
    "self.body = nn.Sequential(*layers)",
    'with torch.device("meta"):',
    'raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")',
    "if isinstance(layer, nn.Conv2d | nn.Linear):",
    "P, Q = out.shape[1], out.shape[2]",
}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A fresh checkout of this working tree: the files git tracks, and the new ones it
    does not ignore, copied as they are (what a clone of the commit would hold)."""
    root = tmp_path_factory.mktemp("checkout")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                            cwd=build.ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = build.ROOT / name
        if source.is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / name)
    return root


@pytest.fixture(scope="module")
def made(checkout, tmp_path_factory) -> Path:
    """`python -m autograde student-edition OUT`, run in the fresh checkout."""
    out = tmp_path_factory.mktemp("edition") / "students"
    done = subprocess.run([sys.executable, "-m", "autograde", "student-edition", str(out)],
                          cwd=checkout, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "wrote the student edition" in done.stdout
    return out


def edition_texts(out: Path) -> dict[str, str]:
    """Every file of the edition as text (a notebook as its cells' sources)."""
    texts = {}
    for path in out.rglob("*"):
        if path.is_file() and not {".git", ".venv", "work", "build"} & set(path.parts):
            rel = path.relative_to(out).as_posix()
            texts[rel] = ("\n".join(c.source for c in nbformat.read(path, 4).cells)
                          if path.suffix == ".ipynb" else path.read_text(errors="replace"))
    return texts


def answers(lab: str) -> list[list[str]]:
    """Each answer block of the lab's solution, as its stripped code lines."""
    blocks = []
    for cell in build.source_notebook(lab).cells:
        for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
            lines = [ln.strip() for ln in block.splitlines()]
            blocks.append([ln for ln in lines if ln and not ln.startswith("#")])
    return blocks


def allowed_places(out: Path) -> dict[str, set[int]]:
    """Lines students may read that hold an answer's twin: efflib's graded references
    (refused inside answers; copying them is flagged, not hidden) and its model classes
    (refused inside answers by the checks), and the visible checks' own references."""
    places: dict[str, set[int]] = {}
    for path in [*(out / "efflib").rglob("*.py"), *(out / "autograde" / "checks").rglob("*.py")]:
        rel = path.relative_to(out).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            guarded = isinstance(node, ast.FunctionDef) and any(
                "reference" in ast.unparse(d) for d in node.decorator_list)
            model = isinstance(node, ast.ClassDef) and rel.startswith("efflib/models/")
            checks = isinstance(node, ast.FunctionDef) and rel.startswith("autograde/checks/")
            if guarded or model or checks:
                places.setdefault(rel, set()).update(range(node.lineno, node.end_lineno + 1))
    return places


def test_the_edition_holds_what_students_need_and_nothing_of_the_instructors(made):
    files = set(json.loads((made / edition.MANIFEST).read_text())["files"])
    for lab in build.lab_names():
        assert f"labs/{lab}/{lab}.ipynb" in files
    assert {"Makefile", "README.md", "pyproject.toml", "constraints.txt",
            "autograde/__main__.py", "autograde/checks/api.py", "efflib/__init__.py"} <= files
    assert not [f for f in files if f.startswith(("solutions/", "tests/", "bench/", "build/",
                                                  "docs/", "autograde/grading/",
                                                  "autograde/sandbox/", ".ci/"))]
    assert "make lab" in (made / "README.md").read_text()
    assert "make test" not in (made / "README.md").read_text()


def test_every_autograde_module_the_edition_ships_finds_its_imports_there():
    """A module the edition ships may import only shipped modules of autograde (validation
    once imported a new autograde.headings the edition did not ship: `make validate` then
    lost its per-question lines, found only by the slow test below)."""
    package = build.ROOT / "autograde"
    shipped = [p for name in edition.AUTOGRADE
               for p in ([package / name] if name.endswith(".py")
                         else sorted((package / name).rglob("*.py")))]
    names = {".".join(p.relative_to(build.ROOT).with_suffix("").parts) for p in shipped}
    names |= {n.removesuffix(".__init__") for n in names} | {"autograde"}
    missing = []
    for path in shipped:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                    node.module.startswith("autograde"):
                wanted = [node.module] if node.module != "autograde" else \
                    [f"autograde.{a.name}" for a in node.names]
                missing += [f"{path.name}: {w}" for w in wanted if w not in names]
    assert not missing, missing


def test_no_answer_of_any_lab_is_in_the_edition(made):
    """Every answer block, and every line of 25 characters or more of it, is searched for in
    the edition: none is there but as a twin students may read (allowed_places), given
    code of the lab itself, or an idiom listed in GENERIC."""
    texts = edition_texts(made)
    places = allowed_places(made)
    flat = {rel: "\n".join(ln.strip() for ln in t.splitlines()) for rel, t in texts.items()}
    searched = found = 0
    for lab in build.lab_names():
        given = texts[f"labs/{lab}/{lab}.ipynb"]  # the release: the stubs and the lab's code
        for block in answers(lab):
            if len(block) >= 3:
                whole = "\n".join(block)
                assert not [rel for rel, t in flat.items() if whole in t], (lab, block[:3])
            for line in block:
                if len(line) < 25 or line in GENERIC or line in given:
                    continue
                searched += 1
                for rel, text in texts.items():
                    for number, candidate in enumerate(text.splitlines(), 1):
                        if candidate.strip() == line:
                            found += 1
                            assert number in places.get(rel, ()), \
                                f"{lab}'s answer line {line!r} is in {rel}:{number}"
    assert searched > 300 and found, (searched, found)  # the search ran, and saw the twins


def test_writing_again_updates_in_place_and_loses_nothing(tmp_path):
    out = tmp_path / "students"
    edition.write(out, ["lab01_layers", "lab02_metrics"])
    (out / "work").mkdir()
    (out / "work" / "mine.ipynb").write_text("{}")
    (out / ".git").mkdir()  # the instructor's repository of the edition
    edition.write(out, ["lab01_layers"])
    assert not list((out / "labs").rglob("lab02_metrics.ipynb")), "a lab taken out stays"
    assert (out / "labs" / "lab01_layers" / "lab01_layers.ipynb").is_file()
    assert (out / "work" / "mine.ipynb").read_text() == "{}" and (out / ".git").is_dir()
    stranger = tmp_path / "not-an-edition"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("years of work")
    with pytest.raises(edition.EditionError, match="not a student edition"):
        edition.write(stranger)
    assert (stranger / "thesis.tex").read_text() == "years of work"
    with pytest.raises(edition.EditionError, match="inside the course repository"):
        edition.write(build.ROOT / "students")
    with pytest.raises(edition.EditionError, match="no released lab named lab99_x"):
        edition.write(tmp_path / "new", ["lab99_x"])
    assert not (tmp_path / "new").exists()


def test_the_editions_command_line_has_only_the_students_command(made):
    env = {**os.environ, "PYTHONPATH": str(made)}
    done = subprocess.run([sys.executable, "-m", "autograde", "grade", "lab01_layers", "x"],
                          cwd=made, capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "instructor's command" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.course
def test_make_lab_and_validate_work_from_the_edition_alone(made, tmp_path):
    """On a fresh machine: `make lab` in the edition makes its own .venv from the registry,
    copies the labs into work/ and serves JupyterLab; Validate answers there."""
    port = _free_port()
    log_path = tmp_path / "make-lab.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(build.ROOT)))
    with open(log_path, "w") as log:
        server = subprocess.Popen(["make", "lab", f"PORT={port}"], cwd=made, stdout=log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            deadline = time.monotonic() + 1500  # installing torch and JupyterLab first
            while "JupyterLab is ready" not in log_path.read_text():
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "make lab did not serve in time"
                time.sleep(1)
            ready = log_path.read_text()
            token = re.search(r"token=(\w+)", ready).group(1)
            assert (made / ".venv" / "bin" / "python").is_file()
            assert (made / "work" / "lab01_layers" / "lab01_layers.ipynb").is_file()
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/assignments/validate", method="POST",
                data=json.dumps({"path": "lab01_layers/lab01_layers.ipynb"}).encode(),
                headers={"Authorization": f"token {token}",
                         "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as resp:
                result = json.loads(resp.read())
            lines = result["value"]["failed"][0]["raw_error"].splitlines()
            assert lines[0] == "✗ Q1. Linear layer: not answered yet", lines
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
