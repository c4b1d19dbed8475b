"""autograde.hub.course: a hub course's accounts and folders, and its record."""

import pytest

from autograde.hub.course import HubCourse, HubError


def test_account_names_and_roles_are_checked():
    with pytest.raises(HubError, match="'Bob Smith' is not a local account name"):
        HubCourse("/srv/x", "prof", ("Bob Smith",))
    with pytest.raises(HubError, match="prof cannot be the instructor and a student"):
        HubCourse("/srv/x", "prof", ("ann", "prof"))
    with pytest.raises(HubError, match="a student is named twice"):
        HubCourse("/srv/x", "prof", ("ann", "ann"))


def test_missing_accounts_are_named_with_how_to_make_them():
    hub = HubCourse("/srv/x", "root", ("efflab-nobody-such-1", "efflab-nobody-such-2"))
    with pytest.raises(HubError, match="no local account efflab-nobody-such-1, "
                                       "efflab-nobody-such-2: create each with `useradd"):
        hub.accounts()


def test_the_record_is_read_back(tmp_path):
    hub = HubCourse(tmp_path, "prof", ("ann", "bob"))
    hub.save()
    assert HubCourse.load(tmp_path) == hub
    with pytest.raises(HubError, match="is not a hub course: run `python -m autograde hub "
                                       "setup"):
        HubCourse.load(tmp_path / "elsewhere")
    (tmp_path / "hub.json").write_text('{"root": 1}')
    with pytest.raises(HubError, match="is not a hub course's record"):
        HubCourse.load(tmp_path)


def test_the_interpreters_library_is_on_the_path_only_when_copied(tmp_path):
    hub = HubCourse(tmp_path, "prof", ("ann",))
    assert "LD_LIBRARY_PATH" not in hub.environ({"PATH": "/bin"})
    (hub.interpreter / "lib").mkdir(parents=True)
    assert hub.environ({"PATH": "/bin"}) == {"PATH": "/bin",
                                             "LD_LIBRARY_PATH": str(hub.interpreter / "lib")}


def test_a_roles_processes_run_the_hubs_python_with_the_roles_config(tmp_path):
    hub = HubCourse(tmp_path, "prof", ("ann",))
    env = hub.role_environ("hub-student", {"HOME": "/home/ann"})
    assert env["HOME"] == "/home/ann" and env["PATH"].startswith(f"{hub.python.parent}:")
    assert env["JUPYTER_CONFIG_DIR"] == str(hub.jupyter / "hub-student")
