"""Who can read what on a hub course's machine: the instructor's files closed to the
students, each student's home closed to the others (nbgrader's exchange keeps the
submissions apart; a home readable by all would undo it)."""

import os
import stat
from pathlib import Path

# what only the instructor's side may read in the course repository
INSTRUCTOR_ONLY = ("solutions", "build", ".git", "grading")


def others_can_read(path: Path) -> bool:
    """Whether an account that is neither owner nor group can read `path`: every folder
    above it searchable by others and `path` itself readable (a folder also searchable)."""
    path = path.resolve()
    for parent in reversed(path.parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def others_can_run(path: Path) -> bool:
    """Whether an account that is neither owner nor group can run the program `path`
    (every folder above it searchable, itself executable by others)."""
    path = path.resolve()
    return path.is_file() and all(os.stat(p).st_mode & stat.S_IXOTH
                                  for p in [*path.parents, path])


def exposed(repository: Path) -> list[Path]:
    """The repository's instructor-only folders that students on this machine can read."""
    return [repository / name for name in INSTRUCTOR_ONLY
            if (repository / name).exists() and others_can_read(repository / name)]


def close_homes(homes: dict[str, Path]) -> list[str]:
    """Each course account's home made its own alone (0700) where others could enter it;
    returns the accounts changed."""
    changed = []
    for name, home in homes.items():
        mode = os.stat(home).st_mode
        if mode & 0o077:
            os.chmod(home, stat.S_IMODE(mode) & 0o700)
            changed.append(name)
    return changed
