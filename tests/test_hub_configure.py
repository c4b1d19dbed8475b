"""autograde.hub.configure: what hub setup writes, without root (tests/test_hub.py runs
the real thing)."""

import pytest

from autograde.hub import configure
from autograde.hub.course import HubCourse, HubError


def test_setup_needs_root(tmp_path, monkeypatch):
    monkeypatch.setattr(configure.os, "geteuid", lambda: 1000)
    with pytest.raises(HubError, match="hub setup needs root"):
        configure.setup(HubCourse(tmp_path, "prof", ("ann",)))
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_the_jupyterhub_config_runs_every_server_from_the_edition(tmp_path):
    hub = HubCourse(tmp_path, "prof", ("bob", "ann"))
    text = configure.jupyterhub_config(hub)
    namespace = {"get_config": lambda: _Config()}
    exec(compile(text, "jupyterhub_config.py", "exec"), namespace)  # noqa: S102 - ours
    c = namespace["c"]
    assert c.Authenticator.allowed_users == {"ann", "bob", "prof"}
    assert c.Authenticator.admin_users == {"prof"}
    assert c.ConfigurableHTTPProxy.command == [str(hub.proxy)]
    assert "STUDENTS = set(['ann', 'bob'])" in text  # the same file for the same course

    class Spawner:
        def __init__(self, name):
            self.user, self.environment = type("U", (), {"name": name}), {}
            self.notebook_dir = "~"

    for name, role in (("ann", "hub-student"), ("prof", "hub-instructor")):
        spawner = Spawner(name)
        namespace["pwd"] = type("P", (), {"getpwnam": staticmethod(
            lambda n: type("A", (), {"pw_dir": f"/home/{n}"}))})
        c.Spawner.pre_spawn_hook(spawner)
        assert spawner.cmd == [str(hub.python), "-m", "jupyterhub.singleuser"]
        assert spawner.environment["JUPYTER_CONFIG_DIR"] == str(hub.jupyter / role)
        assert spawner.environment["JUPYTERLAB_WORKSPACES_DIR"].startswith(f"/home/{name}/")
        assert spawner.notebook_dir == (str(hub.course) if name == "prof" else "~")


def test_nbgrader_settings_of_each_role(tmp_path):
    hub = HubCourse(tmp_path, "prof", ("ann",))
    student = configure.nbgrader_config(hub, "hub-student")
    assert f"c.Exchange.root = {str(hub.exchange)!r}" in student
    assert "c.CourseDirectory.course_id = 'efflab'" in student
    assert "CourseDirectory.root" not in student
    assert f"c.CourseDirectory.root = {str(hub.course)!r}" in \
        configure.nbgrader_config(hub, "hub-instructor")


def test_this_python_where_the_accounts_can_run_it(tmp_path, monkeypatch):
    monkeypatch.setattr(configure.access, "others_can_run", lambda path: True)
    hub = HubCourse(tmp_path, "prof", ("ann",))
    assert configure.shared_python(hub).name.startswith("python")
    assert not hub.interpreter.exists()  # nothing copied


class _Config:
    """Attribute access that makes sections as traitlets' Config does."""

    def __getattr__(self, name):
        section = _Config()
        setattr(self, name, section)
        return section

