"""Light at import: what a DAG file imports pulls in no sandbox server, mlflow, oci SDK or OpenLineage."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_provider_modelreg.get_provider_info import get_provider_info

HEAVY = ("fastapi", "uvicorn", "starlette", "mlflow", "oci", "openlineage", "airflow_provider_modelreg.sandbox")

# Imports the modules one after another in one fresh interpreter and prints, for each, the modules that
# its import added: what a module pulls in is seen even when an earlier one already pulled in the rest.
_NEW_MODULES_PER_IMPORT = """
import sys, json, importlib
added = {}
for name in sys.argv[1:]:
    before = set(sys.modules)
    importlib.import_module(name)
    added[name] = sorted(set(sys.modules) - before)
print(json.dumps(added))
"""


def dag_facing_modules() -> list[str]:
    info = get_provider_info()
    modules = [m for group in ("operators", "sensors", "hooks") for e in info[group] for m in e["python-modules"]]
    return modules + [link.rpartition(".")[0] for link in info["extra-links"]]


def test_dag_facing_modules_import_nothing_heavy() -> None:
    modules = dag_facing_modules()
    assert len(modules) >= 14, modules  # every operator, sensor, hook and link module the provider declares
    # airflow.sdk first, as in a DAG file: what it loads is Airflow's (3.0's loads FastAPI and its ORM), not ours.
    run = subprocess.run(
        [sys.executable, "-c", _NEW_MODULES_PER_IMPORT, "airflow.sdk", *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    added: dict[str, list[str]] = json.loads(run.stdout)
    added.pop("airflow.sdk")
    heavy = {
        module: found
        for module, new in added.items()
        if (found := [m for m in new if any(m == h or m.startswith(h + ".") for h in HEAVY)])
    }
    assert heavy == {}
