"""The grading settings an instructor chooses for one lab: declared once, passed whole.

The `grade` command builds one `Settings` from its options (their names, defaults and
help come from here), `Grader` holds it, nbgrader's config carries it to the Execute
step as one trait (`SandboxedExecute.settings`, `ClusterExecute.settings`), a Dask task
carries it to its worker, `policy` turns it into the kernel's sandbox `Policy`, and a
regrade reads it back from the folder's grading.json. A new setting is one field here.
"""

import argparse
from dataclasses import asdict, dataclass, field, fields

from autograde.sandbox.policy import Policy


def _option(default, help: str):
    """A field that the `grade` command offers as --NAME (help: what it means)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """How each student's notebook is run and judged."""

    cell_timeout: int = _option(60, "seconds per cell (judged cells: three times that)")
    notebook_timeout: int = _option(600, "wall-clock seconds for the whole notebook")
    memory_mb: int = _option(3072, "per student kernel, and per grading worker")
    disk_mb: int = _option(512, "per student kernel: size of its scratch folder, /tmp and "
                                "/dev/shm (each a tmpfs, counted in its memory)")
    cpu_seconds: int = _option(600, "CPU-time limit of a student kernel")
    judge: bool = True  # test cells judged in the grader (off only to diagnose the judge)
    clean_room: bool = True  # functions judged where the lab's answers do not exist

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type is bool and not isinstance(value, bool):
                raise ValueError(f"setting {f.name} must be true or false, got {value!r}")
            if f.type is int and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
                raise ValueError(f"setting {f.name} must be a positive whole number, got "
                                 f"{value!r}")

    def policy(self, hide: list[str]) -> Policy:
        """The sandbox policy of a student kernel under these settings, hiding `hide`."""
        return Policy(memory_mb=self.memory_mb, cpu_seconds=self.cpu_seconds,
                      disk_mb=self.disk_mb, hide=list(hide))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Settings":
        """Settings from `to_dict`'s output; ValueError naming a key that is not a setting."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"not grading settings: {', '.join(sorted(unknown))}; the "
                             f"settings are {', '.join(f.name for f in fields(cls))}")
        return cls(**values)


def add_options(parser: argparse.ArgumentParser) -> None:
    """--cell-timeout, --memory-mb, ...: one option per offered setting, its default and help."""
    for f in fields(Settings):
        if "help" in f.metadata:
            parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default,
                                help=f"{f.metadata['help']} (default: {f.default})")


def from_options(args: argparse.Namespace) -> Settings:
    """The Settings that `add_options`'s options were given."""
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings)
                       if "help" in f.metadata})


DEFAULTS = Settings()
