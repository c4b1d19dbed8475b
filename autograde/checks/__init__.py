"""Checks that lab test cells call: `api` for check writers, one module per lab named after it."""

import importlib
from types import ModuleType


def of(lab: str) -> ModuleType:
    """The lab's checks module, autograde/checks/LAB.py (ImportError for no such lab)."""
    return importlib.import_module(f"{__name__}.{lab}")
