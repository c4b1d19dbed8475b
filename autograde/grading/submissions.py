"""Find one notebook per student in a folder or zip, refusing what could harm the grader.

Accepted layouts: `STUDENT.ipynb` files, or `STUDENT/` folders holding the lab's
notebook (any name; `LAB.ipynb` preferred when there are several), such as the
`submitted/` folder `nbgrader collect` fills from a JupyterHub's exchange: its
`timestamp.txt` and `submission_secret.txt` beside the notebook travel with it
(the time marks a late submission; the secret names the feedback released back
through the exchange). A zip may wrap either layout in one top folder. Entries that
escape the target folder, links, oversized files and unreadable notebooks are reported,
never followed.
"""

import hashlib
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.utils import parse_utc

from autograde.course import build

MAX_NOTEBOOK_BYTES = 20_000_000
MAX_ZIP_BYTES = 2_000_000_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_SECRET = re.compile(r"[0-9a-f]{16,256}")  # nbgrader's submit writes 128 hex digits
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


@dataclass
class Submission:
    """A student's notebook, or why there is none."""

    student: str
    notebook: Path | None
    problem: str = ""
    exchange: dict[str, str] = field(default_factory=dict)  # {EXCHANGE_FILES name: text}

    @property
    def digest(self) -> str:
        """A hash of what was handed in: a changed resubmission is graded again (and one
        handed in again through the exchange, whose time and secret are new)."""
        if self.notebook is None:
            return ""
        h = hashlib.sha256(self.notebook.read_bytes())
        for name, text in sorted(self.exchange.items()):
            h.update(f"\0{name}\0{text}".encode())
        return h.hexdigest()[:16]


def exchange_files(folder: Path) -> tuple[dict[str, str], str]:
    """({name: text}, problem) of the files nbgrader's exchange wrote beside a submitted
    notebook in `folder`; one that is not what nbgrader writes is left out, and said."""
    found, problems = {}, []
    for name in EXCHANGE_FILES:
        path = folder / name
        if not path.is_file() or path.is_symlink():
            continue
        text = path.read_bytes()[:300].decode(errors="replace").strip()
        if name == "timestamp.txt":
            try:
                parse_utc(text)
            except (ValueError, OverflowError, TypeError):
                problems.append(f"{name} does not hold a time ({text[:40]!r}): ignored")
                continue
        elif not _SECRET.fullmatch(text):
            problems.append(f"{name} is not one nbgrader's submit wrote: ignored")
            continue
        found[name] = text
    return found, "; ".join(problems)


def reasons(*parts: str) -> str:
    """The non-empty reasons, joined for one line of the report."""
    return "; ".join(p for p in parts if p)


def student_id(name: str) -> str:
    """A student id nbgrader and file systems accept: letters, digits, _ . - only."""
    cleaned = _SAFE.sub("_", name).strip("._") or "student"
    return cleaned[:64]


def unpack(archive: Path, dest: Path) -> tuple[Path, dict[Path, str]]:
    """Extract a zip safely (no absolute paths, no '..', no links, bounded size). An entry
    that is too big or corrupt is skipped, not fatal: returns the folder of submissions and
    {entry path: why it was skipped}, to be reported against its student."""
    dest.mkdir(parents=True, exist_ok=True)
    total, skipped = 0, {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = Path(info.filename).parts
            mode = info.external_attr >> 16
            if info.filename.startswith("/") or ".." in parts or stat.S_ISLNK(mode):
                continue  # reported as missing if it was a student's only file
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if info.file_size > MAX_NOTEBOOK_BYTES or total + info.file_size > MAX_ZIP_BYTES:
                skipped[Path(*parts)] = (f"{info.filename} in the zip declares "
                                         f"{info.file_size:,d} bytes; not unpacked")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                total += _extract(zf, info, target)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                target.unlink(missing_ok=True)
                skipped[Path(*parts)] = f"{info.filename} in the zip is unreadable ({e})"
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and _is_wrapper(entries[0]):
        wrapper = entries[0].name  # the zip wraps everything in one folder
        return entries[0], {Path(*p.parts[1:]): why for p, why in skipped.items()
                            if p.parts[0] == wrapper and len(p.parts) > 1}
    return dest, skipped


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> int:
    """Copy one entry, stopping at MAX_NOTEBOOK_BYTES whatever size it declared."""
    written = 0
    with zf.open(info) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > MAX_NOTEBOOK_BYTES:
                raise ValueError(f"it unpacks to more than {MAX_NOTEBOOK_BYTES:,d} bytes")
            out.write(chunk)
    return written


def _is_wrapper(folder: Path) -> bool:
    """A single top folder that holds student folders or notebooks, not notebooks itself."""
    inner = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return len(inner) > 1 or any(p.is_dir() for p in inner)


def collect(source: Path, lab: str, scratch: Path) -> list[Submission]:
    """One Submission per student found in `source` (a folder or a .zip)."""
    if not source.exists():
        raise FileNotFoundError(f"no submissions at {source}")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(f"{source} is neither a folder nor a zip archive")
        source, skipped = unpack(source, scratch / "unzipped")
    else:
        skipped = {}
    found: dict[str, Submission] = {}
    other_labs = set(build.lab_names()) - {lab}  # a student's folder of another lab
    for entry in sorted(source.iterdir()):
        if entry.name.startswith((".", "__MACOSX")) or entry.is_symlink():
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            sub = Submission(student_id(entry.stem), entry)
        elif entry.is_dir():
            # nbgrader's collected layout, submitted/STUDENT/LAB/: this lab's folder alone
            where = entry / lab if (entry / lab).is_dir() else entry
            notebooks = sorted(p for p in where.rglob("*.ipynb")
                               if ".ipynb_checkpoints" not in p.parts and not p.is_symlink()
                               and not other_labs & set(p.relative_to(entry).parts[:-1]))
            preferred = [p for p in notebooks if p.stem == lab]
            if not notebooks:
                sub = Submission(student_id(entry.name), None, "no notebook in the submission")
            else:
                sub = Submission(student_id(entry.name), (preferred or notebooks)[0])
                if len(notebooks) > 1 and not preferred:
                    sub.problem = (f"{len(notebooks)} notebooks and none named {lab}.ipynb; "
                                   f"graded {sub.notebook.name}")
                sub.exchange, odd = exchange_files(sub.notebook.parent)
                sub.problem = reasons(sub.problem, odd)
        else:
            continue
        if sub.student in found:
            sub.student = f"{sub.student}_{len(found)}"
            sub.problem = reasons(sub.problem,
                                  "student id clashed with another submission, renamed")
        if sub.notebook is not None and (unreadable := readable(sub.notebook)):
            sub.problem = reasons(sub.problem, unreadable)
            sub.notebook = None  # decided on readable's answer, not on its words
        found[sub.student] = sub
    for path, why in skipped.items():  # an entry that could not be unpacked: its student's
        sid = student_id(path.stem if len(path.parts) == 1 else path.parts[0])
        sub = found.setdefault(sid, Submission(sid, None))
        sub.problem = reasons(sub.problem, why)
    return list(found.values())


def readable(path: Path) -> str:
    """'' if `path` is a notebook nbgrader can read, else what is wrong with it."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return f"notebook larger than {MAX_NOTEBOOK_BYTES:,d} bytes ({size:,d})"
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:  # noqa: BLE001 - any parse failure is the student's problem
        return f"not a readable notebook: {type(e).__name__}: {str(e)[:200]}"
    return ""


GRADING_KEYS = ("grade", "solution", "locked", "points", "task")


def repair(path: Path, known: dict[str, dict]) -> tuple[nbformat.NotebookNode, list[str]]:
    """Undo edits that make nbgrader refuse a notebook; say what was done.

    `known` maps each grade_id of the lab to its nbgrader metadata. A cell's grading
    settings (grade, solution, locked, points, task) are put back as the lab has
    them, so flipping a flag neither earns nor costs anything; duplicated graded
    cells (same grade_id) keep only the first copy; cells with a grade_id the lab
    does not have lose their nbgrader metadata (they earn nothing); duplicate cell
    ids are renumbered. Deleted test cells stay deleted: 0 for them.
    """
    known_ids = set(known)
    nb = nbformat.read(path, as_version=4)
    notes, seen, ids, cells = [], set(), set(), []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid is not None and gid not in known_ids:
            del cell.metadata["nbgrader"]
            notes.append(f"cell {gid!r} is not part of the lab: ignored")
        elif gid is not None and gid in seen:
            notes.append(f"removed a duplicate of cell {gid}")
            continue
        elif gid is not None:
            seen.add(gid)
            lab = {k: known[gid].get(k) for k in GRADING_KEYS if k in known[gid]}
            if any(meta.get(k) != v for k, v in lab.items()):
                meta.update(lab)
                notes.append(f"cell {gid}'s grading settings were edited: restored")
        if cell.get("id") in ids:
            cell.id = f"dup-{len(cells)}"
        ids.add(cell.get("id"))
        cells.append(cell)
    nb.cells = cells
    missing = sorted(i for i in known_ids - seen if i.endswith("_test"))
    if missing:
        notes.append(f"test cells deleted (0 points): {', '.join(missing)}")
    return nb, notes
