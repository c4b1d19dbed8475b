"""The course's secret, which only the grader holds, and the key each lab draws from it.

The secret is created in the grading folder on first use (`secret`, readable by
its owner only), or an instructor names a file of their own (`--secret FILE`,
for one secret across several grading folders). It is never in the repository,
never in a student's kernel (the sandbox hides the grading folder), and never in
feedback or reports: those name it only by its fingerprint.

Each lab gets a key of its own (an HMAC of the secret and the lab's name). The
grader writes it, with the lab's held-out digits where the lab's checks judge
accuracy (judging.heldout), to `hidden/LAB.pt` in the grading folder; workers
and Dask tasks read that file. The same secret grades the same notebook the same
way; a new secret draws new hidden cases and new digits.
"""

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import torch

from autograde import checks
from autograde.judging.heldout import held_out_digits
from autograde.judging.hidden import GradingKey

SECRET_FILE = "secret"
MIN_CHARS = 16


class SecretError(ValueError):
    """The secret file is unusable; the message says why."""


def load(path: Path, create: bool = True) -> bytes:
    """The secret in `path` (any text of at least 16 characters), created there with 32
    random bytes if missing and `create`."""
    if not path.exists():
        if not create:
            raise SecretError(f"no secret file at {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(f"cannot read the secret file {path}: {e}") from None
    if len(text) < MIN_CHARS:
        raise SecretError(f"the secret in {path} has {len(text)} characters; it needs at "
                          f"least {MIN_CHARS} (delete the file to have a new one made)")
    return hashlib.sha256(text.encode()).digest()


def fingerprint(secret: bytes) -> str:
    """A name for the secret that gives nothing of it away (for journals and reports)."""
    return hmac.new(secret, b"fingerprint", hashlib.sha256).hexdigest()[:12]


def lab_key(secret: bytes, lab: str) -> bytes:
    return hmac.new(secret, f"lab:{lab}".encode(), hashlib.sha256).digest()


def key_path(course: Path, lab: str) -> Path:
    return course / "hidden" / f"{lab}.pt"


def needs_held_out_digits(lab: str) -> bool:
    """Whether the lab's checks judge a model's accuracy (they say so: HELD_OUT_DIGITS)."""
    return bool(getattr(checks.of(lab), "HELD_OUT_DIGITS", False))


def prepare(course: Path, lab: str, secret: bytes) -> Path:
    """`hidden/LAB.pt` for this secret: made once (the held-out digits take seconds to
    draw), made again when the secret changed."""
    path = key_path(course, lab)
    if path.is_file():
        try:
            if torch.load(path, weights_only=True).get("fingerprint") == fingerprint(secret):
                return path
        except Exception:  # noqa: BLE001, S110 - unreadable: made again below
            pass
    contents: dict = {"fingerprint": fingerprint(secret), "key": lab_key(secret, lab).hex()}
    if needs_held_out_digits(lab):
        contents["images"], contents["labels"] = held_out_digits(lab_key(secret, lab))
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(contents, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)  # a grader killed meanwhile leaves the old file or the new one
    return path


def read_key(path: Path) -> GradingKey:
    """The grading key a worker installs (judging.hidden.keyed) while it grades."""
    try:
        contents = torch.load(path, weights_only=True)
        return GradingKey(bytes.fromhex(contents["key"]), contents.get("images"),
                          contents.get("labels"))
    except FileNotFoundError:
        raise SecretError(f"no grading key at {path}: grade with `python -m autograde "
                          "grade`, which makes it") from None
    except Exception as e:  # noqa: BLE001 - a damaged file: say which
        raise SecretError(f"the grading key {path} is unreadable: {type(e).__name__}: "
                          f"{e}") from None
