"""autograde.grading.secret: the course's secret stays the grader's, and each lab's key
and held-out digits are made from it once."""

import os
import stat

import pytest
import torch

from autograde.grading import secret
from autograde.judging.hidden import GradingKey


def test_a_secret_is_made_on_first_use_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "course" / "secret"
    first = secret.load(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_text().strip()) == 64 and len(first) == 32
    assert secret.load(path) == first, "read again, not made again"
    assert secret.load(tmp_path / "other") != first


def test_an_instructors_own_secret_is_used_as_given_and_a_bad_one_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.write_text("correct horse battery staple\n")
    assert secret.load(mine, create=False) == secret.load(mine)
    (tmp_path / "short").write_text("hunter2")
    with pytest.raises(secret.SecretError, match="at least 16"):
        secret.load(tmp_path / "short")
    with pytest.raises(secret.SecretError, match="no secret file"):
        secret.load(tmp_path / "missing", create=False)


def test_fingerprints_and_lab_keys_give_nothing_away(tmp_path):
    s = secret.load(tmp_path / "secret")
    fp = secret.fingerprint(s)
    assert len(fp) == 12 and fp not in (tmp_path / "secret").read_text()
    assert secret.lab_key(s, "lab01_layers") != secret.lab_key(s, "lab02_metrics")
    assert secret.fingerprint(secret.load(tmp_path / "other")) != fp


def test_labs_that_judge_accuracy_say_so():
    assert not secret.needs_held_out_digits("lab01_layers")
    assert all(secret.needs_held_out_digits(lab) for lab in
               ("lab03_architectures", "lab04_pruning", "lab07_beyond_compression"))


def test_a_labs_key_is_prepared_once_and_again_for_a_new_secret(tmp_path):
    course = tmp_path / "course"
    s = secret.load(course / "secret")
    path = secret.prepare(course, "lab01_layers", s)
    assert path == course / "hidden" / "lab01_layers.pt"
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = secret.read_key(path)
    assert isinstance(key, GradingKey) and key.key == secret.lab_key(s, "lab01_layers")
    assert key.count() == 0, "Lab 01 judges no accuracy: no digits drawn"
    made = path.stat().st_mtime_ns
    secret.prepare(course, "lab01_layers", s)
    assert path.stat().st_mtime_ns == made, "the same secret: the file is kept"
    other = secret.load(tmp_path / "new secret")
    secret.prepare(course, "lab01_layers", other)
    assert secret.read_key(path).key == secret.lab_key(other, "lab01_layers")


def test_a_lab_that_judges_accuracy_gets_the_held_out_digits(tmp_path):
    s = secret.load(tmp_path / "secret")
    key = secret.read_key(secret.prepare(tmp_path, "lab04_pruning", s))
    assert key.count() == 1500 and key.images.shape == (1500, 1, 8, 8)
    assert key.images.dtype == torch.float32


def test_a_missing_or_damaged_key_is_named(tmp_path):
    with pytest.raises(secret.SecretError, match="python -m autograde grade"):
        secret.read_key(tmp_path / "hidden" / "lab01_layers.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a key")
    with pytest.raises(secret.SecretError, match="unreadable"):
        secret.read_key(bad)
