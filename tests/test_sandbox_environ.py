"""sandbox.environ: the environment changed for a block and put back, whatever happens."""

import os

import pytest

from autograde.sandbox.environ import temporary_environ


def test_names_are_set_for_the_block_and_restored_or_removed_after(monkeypatch):
    monkeypatch.setenv("EFFLAB_T_KEPT", "before")
    monkeypatch.delenv("EFFLAB_T_NEW", raising=False)
    with temporary_environ({"EFFLAB_T_KEPT": "during", "EFFLAB_T_NEW": "during"}):
        assert os.environ["EFFLAB_T_KEPT"] == os.environ["EFFLAB_T_NEW"] == "during"
    assert os.environ["EFFLAB_T_KEPT"] == "before"
    assert "EFFLAB_T_NEW" not in os.environ


def test_an_error_in_the_block_restores_too(monkeypatch):
    monkeypatch.delenv("EFFLAB_T_NEW", raising=False)
    with pytest.raises(RuntimeError), temporary_environ({"EFFLAB_T_NEW": "x"}):
        raise RuntimeError("a kernel that did not start")
    assert "EFFLAB_T_NEW" not in os.environ
