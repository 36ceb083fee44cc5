"""How the package is built (docs/architecture.md): its floors and no import cycle, as pyproject.toml's
``[tool.importlinter]`` contracts say, every import counted (module level, in functions, under TYPE_CHECKING)."""

from __future__ import annotations

from pathlib import Path

import pytest

lint = pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency of the locked environment")

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_package_keeps_its_floors_and_has_no_import_cycle():
    assert lint.lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == 0
