"""Build the labs: py:percent sources -> nbgrader source notebooks -> student release.

solutions/<lab>/<lab>.py  --jupytext, fixed cell ids-->  build/source/<lab>/<lab>.ipynb
                          --nbgrader generate_assignment --force-->  labs/<lab>/<lab>.ipynb

Cell ids are fixed (the nbgrader grade_id, else cell-NNN) so the release is
byte-for-byte reproducible and `labs/` can be checked against a fresh build. Answer
and test cells are tagged `raises-exception`, so that Run All goes on past them.
"""

import filecmp
import re
import shutil
import tempfile
import types
from pathlib import Path

import jupytext
import nbformat

from autograde.nbgrader_seam import command

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "solutions"
SOURCE = ROOT / "build" / "source"
LABS = ROOT / "labs"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_LAB_NAME = re.compile(r"^lab\d\d_[a-z0-9_]+$")
# answer and test cells carry it: JupyterLab's Run All does not stop where they raise (a
# question not answered yet, a failed check), so a student sees where every question
# stands; the grader scores them as before
RUN_ON = "raises-exception"
SETUP_TAG = "setup"  # a source cell that solution_namespace runs although it is not first


class BuildError(RuntimeError):
    """A lab source is malformed; the message names the file and the problem."""


def lab_names() -> list[str]:
    """Labs with a source file solutions/<lab>/<lab>.py, in order."""
    return sorted(p.parent.name for p in SOLUTIONS.glob("*/*.py")
                  if p.stem == p.parent.name and _LAB_NAME.match(p.stem))


def released_labs(release: Path = LABS) -> list[str]:
    """Labs with a released notebook labs/<lab>/<lab>.ipynb, in order (what students have:
    the student edition holds no solutions/)."""
    return sorted(p.parent.name for p in release.glob("*/*.ipynb")
                  if p.stem == p.parent.name and _LAB_NAME.match(p.stem))


def source_path(lab: str) -> Path:
    path = SOLUTIONS / lab / f"{lab}.py"
    if not path.is_file():
        raise BuildError(f"no lab source {path.relative_to(ROOT)}; labs: {lab_names()}")
    return path


def source_notebook(lab: str | Path) -> nbformat.NotebookNode:
    """The nbgrader source notebook of `lab` (a name or a .py path), fixed ids, validated."""
    path = lab if isinstance(lab, Path) else source_path(lab)
    nb = jupytext.read(path, fmt="py:percent")
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC,
                                      "language_info": {"name": "python"}})
    seen: dict[str, int] = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        cell.metadata = nbformat.from_dict({"nbgrader": meta} if meta else {})
        if meta and cell.cell_type == "code":  # Run All goes on past an unanswered question
            cell.metadata["tags"] = [RUN_ON]
        cell.id = meta["grade_id"] if meta and "grade_id" in meta else f"cell-{i:03d}"
        if cell.id in seen:
            raise BuildError(f"{path}: cells {seen[cell.id]} and {i} share the id {cell.id!r}")
        seen[cell.id] = i
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    _check_grading_cells(path, nb)
    nbformat.validate(nb)
    return nb


def _check_grading_cells(path: Path, nb) -> None:
    """Each graded test cell starts with a docstring; ids follow qN_name / qN_name_test."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id", "")
        if meta.get("grade") and not meta.get("solution"):
            if not cell.source.lstrip().startswith('"""'):
                raise BuildError(f"{path}: test cell {gid} must begin with a one-line docstring")
            if not gid.endswith("_test"):
                raise BuildError(f"{path}: test cell id {gid!r} should end in _test")
        if meta.get("grade") and not meta.get("points"):
            raise BuildError(f"{path}: graded cell {gid} has no points")


def write_sources(labs: list[str], dest: Path = SOURCE) -> None:
    for lab in labs:
        out = dest / lab / f"{lab}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(source_notebook(lab), out)


def release(labs: list[str], source: Path = SOURCE, dest: Path = LABS) -> None:
    """Run `nbgrader generate_assignment --force` for each lab into `dest`."""
    for lab in labs:
        try:
            command.run(ROOT, "generate_assignment", lab, "--force", "--no-db",
                        f"--CourseDirectory.source_directory={source}",
                        f"--CourseDirectory.release_directory={dest}", "--log-level=WARN")
        except command.NbgraderError as e:
            raise BuildError(str(e)) from e
        if not (dest / lab / f"{lab}.ipynb").is_file():
            raise BuildError(f"nbgrader generate_assignment {lab} wrote no notebook")


def build(labs: list[str] | None = None, keep_existing: bool = False,
          dest: Path = LABS) -> list[Path]:
    """Rebuild build/source and labs/ for `labs` (all by default).

    With `keep_existing`, files already in labs/ are left alone (a student's
    work in progress is never overwritten) and only missing ones are written.
    """
    labs = labs or lab_names()
    write_sources(labs)
    if not keep_existing:
        release(labs, dest=dest)
        return [dest / lab / f"{lab}.ipynb" for lab in labs]
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        release(labs, dest=Path(tmp))
        for path in sorted(Path(tmp).rglob("*")):
            target = dest / path.relative_to(tmp)
            if path.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                written.append(target)
    return written


def _release_files(folder: Path) -> set[Path]:
    """Files of a released lab, ignoring editor state such as .ipynb_checkpoints."""
    if not folder.is_dir():
        return set()
    return {p.relative_to(folder) for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in
                                       p.relative_to(folder).parts)}


def stale_labs(labs: list[str] | None = None) -> list[str]:
    """Files of labs/ that differ from a fresh build in a temporary folder."""
    labs = labs or lab_names()
    with tempfile.TemporaryDirectory() as tmp:
        source, release_dir = Path(tmp) / "source", Path(tmp) / "release"
        write_sources(labs, source)
        release(labs, source, release_dir)
        stale = []
        for lab in labs:
            fresh, committed = release_dir / lab, LABS / lab
            for rel in sorted(_release_files(fresh) | _release_files(committed)):
                a, b = fresh / rel, committed / rel
                if not (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)):
                    stale.append(f"labs/{lab}/{rel}")
        return stale


def solution_namespace(lab: str) -> types.SimpleNamespace:
    """A lab solution's names: its setup cells and answer cells run, not its test, plot or
    measurement cells (for tests and benchmarks of the solution's code). A later cell that
    prepares what an answer cell needs is tagged setup in the source (`# %% tags=["setup"]`;
    the build keeps no tags)."""
    nb = jupytext.read(source_path(lab), fmt="py:percent")
    env: dict = {"__name__": f"solution_{lab}"}
    setup = True  # every code cell before the first graded one sets the lab up
    for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        setup = setup and not cell.metadata.get("nbgrader")
        if setup or SETUP_TAG in cell.metadata.get("tags", ()):
            exec(compile(cell.source, f"{lab}:setup{i}", "exec"), env)  # noqa: S102
        elif cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, f"{lab}:{cell.metadata['nbgrader']['grade_id']}",
                         "exec"), env)  # noqa: S102
    return types.SimpleNamespace(**{k: v for k, v in env.items() if not k.startswith("__")})
