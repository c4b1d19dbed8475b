"""A student's working copies: work/labNN_topic/, filled once from the release in labs/.

Students never edit labs/ (it is committed and updated by `git pull`); `make lab`
copies each lab folder into the git-ignored work/ the first time and never touches
a copy again. When the release of a lab changes after its copy was made, the
student is told, and a fresh copy is one command away (the old one is kept).
"""

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from autograde.course import build

WORK = build.ROOT / "work"
STATE = ".release.json"  # lab -> digest of the release its copy was made from


@dataclass
class Notice:
    """What `prepare` did or found for one lab."""

    lab: str
    kind: str  # "copied", "updated" (a newer release than the copy), "fresh" (re-copied)
    message: str


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _load(work: Path) -> dict:
    try:
        return json.loads((work / STATE).read_text())
    except (OSError, ValueError):
        return {}


def prepare(work: Path = WORK, release: Path = build.LABS, fresh: tuple[str, ...] = ()
            ) -> list[Notice]:
    """Copy every lab missing from `work`; re-copy the labs in `fresh` (the old copy is
    renamed, never deleted); report copies made from an older release."""
    labs = build.released_labs(release)
    unknown = sorted(set(fresh) - set(labs))
    if unknown:
        raise ValueError(f"no lab named {', '.join(unknown)}; labs: {', '.join(labs)}")
    work.mkdir(parents=True, exist_ok=True)
    state, notices = _load(work), []
    for lab in labs:
        source, target = release / lab, work / lab
        digest = _digest(source)
        if lab in fresh and target.exists():
            kept = target.with_name(f"{lab}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            target.rename(kept)
            notices.append(Notice(lab, "fresh", f"{lab}: fresh copy of the release; your "
                                  f"previous copy is in work/{kept.name}"))
        if not (target / f"{lab}.ipynb").exists():
            shutil.copytree(source, target, dirs_exist_ok=True)
            state[lab] = digest
            if lab not in fresh:
                notices.append(Notice(lab, "copied", f"{lab}: copied to work/{lab}/"))
        elif state.get(lab) != digest:
            notices.append(Notice(lab, "updated", (
                f"{lab}: the course has updated this lab since your copy was made. Your copy "
                f"is unchanged; compare it with labs/{lab}/{lab}.ipynb, or take a fresh copy "
                f"with `make lab FRESH={lab}` (yours is kept beside it).")))
    (work / STATE).write_text(json.dumps(state, indent=1, sort_keys=True))
    return notices
