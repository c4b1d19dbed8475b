"""The student edition: what an instructor hands to students, and nothing more.

`python -m autograde student-edition OUT [--labs LAB ...]` writes into OUT the
released notebooks (labs/), efflib, the part of autograde a student's JupyterLab
runs (the visible checks and the judging they stand on, Validate, `make lab`),
the student's Makefile (student.mk), a README made of the README's student
sections, pyproject.toml and constraints.txt. It holds no solutions/, no
instructor notebooks (build/), no tests, benchmarks or instructor docs, and none
of the grader (autograde/grading, autograde/sandbox): hidden cases are drawn from
a secret only the grader holds, so their code tells a student nothing.

The full repository stays the instructors' and self-learners' edition. OUT is
meant to be a git repository the instructor publishes; writing the edition again
updates it in place: files of the previous edition that are gone are removed,
everything else in OUT (.git, a student's work/ and .venv) is left alone. The new
edition is made complete in a temporary folder first, so a failure changes nothing.
"""

import json
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import nbformat

from autograde.course import build

MANIFEST = ".efflab-edition.json"  # the files an edition wrote: what the next one may remove
AUTOGRADE = ["__init__.py", "course/__init__.py", "course/build.py", "headings.py",
             "nbgrader_seam", "student", "checks", "judging"]
SECTION = re.compile(r"<!-- student edition -->\n(.*?)<!-- end student edition -->", re.S)
MARKERS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")
GITIGNORE = ".venv/\nwork/\nbuild/\n__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n"


class EditionError(ValueError):
    """The edition cannot be written where asked; the message says why."""


def files(labs: list[str]) -> dict[str, bytes]:
    """{path in the edition: contents} of the student edition of `labs`."""
    root = build.ROOT
    out: dict[str, bytes] = {}

    def add_tree(folder: Path, prefix: str) -> None:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and "__pycache__" not in rel.parts and not any(
                    part.startswith(".") for part in rel.parts):
                out[f"{prefix}/{rel.as_posix()}"] = path.read_bytes()

    for lab in labs:
        add_tree(build.LABS / lab, f"labs/{lab}")
    add_tree(root / "efflib", "efflib")
    for name in AUTOGRADE:
        path = root / "autograde" / name
        if path.is_dir():
            add_tree(path, f"autograde/{name}")
        else:
            out[f"autograde/{name}"] = path.read_bytes()
    out["autograde/__main__.py"] = (root / "autograde" / "student" / "student_cli.py").read_bytes()
    out["Makefile"] = (root / "student.mk").read_bytes()
    out["constraints.txt"] = (root / "constraints.txt").read_bytes()
    out["pyproject.toml"] = pyproject().encode()
    out["README.md"] = readme(labs).encode()
    out[".gitignore"] = GITIGNORE.encode()
    return out


def pyproject() -> str:
    """The repository's package metadata, for the packages students install and no extras."""
    meta = tomllib.loads((build.ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    deps = "".join(f'    "{d}",\n' for d in project["dependencies"])
    return (f'[build-system]\nrequires = {json.dumps(meta["build-system"]["requires"])}\n'
            f'build-backend = "{meta["build-system"]["build-backend"]}"\n\n'
            f'[project]\nname = "{project["name"]}-student"\nversion = "{project["version"]}"\n'
            f'description = "{project["description"]}"\nreadme = "README.md"\n'
            f'requires-python = "{project["requires-python"]}"\n'
            f"dependencies = [\n{deps}]\n\n"
            '[tool.setuptools.packages.find]\ninclude = ["efflib*", "autograde*"]\n')


def readme(labs: list[str]) -> str:
    """The README's student sections, under a heading that says what this edition is."""
    sections = SECTION.findall((build.ROOT / "README.md").read_text())
    if not sections:
        raise EditionError("README.md has no <!-- student edition --> sections")
    titles = "".join(f"- {title(lab)}\n" for lab in labs)
    return ("# Efficient Deep Learning for Edge Deployment: the labs\n\n"
            "Your course's labs, to complete in JupyterLab on your own machine (a CPU is "
            f"enough; nothing is downloaded while you work):\n\n{titles}\n"
            "```bash\nmake lab    # creates .venv, installs the pinned dependencies, copies the "
            "labs into\n            # work/ the first time, serves JupyterLab there and prints "
            "the URL to open\n```\n\n" + "\n".join(s.strip() + "\n" for s in sections))


def title(lab: str) -> str:
    """'Lab 01: Layers and shape arithmetic', from the released notebook's first heading."""
    first = nbformat.read(build.LABS / lab / f"{lab}.ipynb", as_version=4).cells[0].source
    return first.splitlines()[0].lstrip("# ").strip()


def check(contents: dict[str, bytes]) -> None:
    """Refuse an edition that would hand out an answer or a hidden test."""
    for path, data in contents.items():
        if path.startswith(("solutions/", "tests/", "build/", "autograde/grading/",
                            "autograde/sandbox/")):
            raise EditionError(f"{path} is not for students")
        text = data.decode(errors="replace")
        for marker in MARKERS:
            if marker in text:
                raise EditionError(f"{path} holds {marker!r}: a solution or hidden test")


def write(out: Path, labs: list[str] | None = None) -> list[str]:
    """Write (or update) the student edition in `out`; returns the paths it holds."""
    released = build.released_labs()
    labs = labs or released
    unknown = sorted(set(labs) - set(released))
    if unknown:
        raise EditionError(f"no released lab named {', '.join(unknown)}; labs: "
                           f"{', '.join(released)}")
    out = out.resolve()
    if out == build.ROOT or build.ROOT in out.parents:
        raise EditionError(f"{out} is inside the course repository; write the edition "
                           "somewhere of its own (it becomes the students' repository)")
    manifest = out / MANIFEST
    if out.exists() and any(out.iterdir()) and not manifest.is_file():
        raise EditionError(f"{out} holds files that are not a student edition; name an empty "
                           "or new folder (or one an earlier student-edition wrote)")
    contents = files(sorted(labs))
    check(contents)
    old = set(json.loads(manifest.read_text())["files"]) if manifest.is_file() else set()
    with tempfile.TemporaryDirectory(prefix="efflab-edition-") as tmp:
        for path, data in contents.items():  # the whole edition first, then into place
            (Path(tmp) / path).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / path).write_bytes(data)
        out.mkdir(parents=True, exist_ok=True)
        for path in contents:
            (out / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / path, out / path)
    for path in sorted(old - set(contents)):
        (out / path).unlink(missing_ok=True)
    manifest.write_text(json.dumps({"source": source_commit(), "labs": sorted(labs),
                                    "files": sorted(contents)}, indent=1) + "\n")
    return sorted(contents)


def source_commit() -> str:
    """The repository's commit the edition was made from ('' outside git)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=build.ROOT, text=True,
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
