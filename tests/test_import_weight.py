"""Light at import: what a DAG file imports pulls in no sandbox server, mlflow or oci SDK."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from airflow_provider_modelreg.get_provider_info import get_provider_info

HEAVY = ("fastapi", "uvicorn", "starlette", "mlflow", "oci", "airflow_provider_modelreg.sandbox")


def dag_facing_modules() -> list[str]:
    info = get_provider_info()
    modules = [m for group in ("operators", "sensors", "hooks") for e in info[group] for m in e["python-modules"]]
    return modules + [link.rpartition(".")[0] for link in info["extra-links"]]


@pytest.mark.parametrize("module", dag_facing_modules())
def test_dag_facing_modules_import_nothing_heavy(module):
    code = (
        "import sys, json, importlib; importlib.import_module(sys.argv[1]); "
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", code, module], capture_output=True, text=True, check=True).stdout
    )
    heavy = [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
