"""How the package is built (docs/architecture.md): its floors and no import cycle, as pyproject.toml's
``[tool.importlinter]`` contracts say, every import counted (module level, in functions, under TYPE_CHECKING)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

lint = pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency of the locked environment")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_package_keeps_its_floors_and_has_no_import_cycle(logging_restored, monkeypatch):
    # import-linter's CLI configures logging for a process of its own (dictConfig, which disables every other
    # logger) and puts the working directory first on sys.path: this process gets both back afterwards.
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert lint.lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == 0
