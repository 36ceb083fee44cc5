"""The sandbox's AI Data Platform as Oracle's own client sees it: ``MLOpsClient`` from aidp-python-client
5.1.1 (in ``.venv-aidp``: it needs the ``oci`` SDK) drives experiments, runs, registered models and model
versions through create, read, list page by page and waits, and every answer deserialises with no key
dropped, no required key missing and no value misread (tests/sandbox/aidp_mlops_driver.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.mlflow import PLATFORM_ID, WORKSPACE_KEY
from fixtures.oci import FINGERPRINT, TENANCY, USER

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
AIDP_PYTHON = ROOT / ".venv-aidp" / "bin" / "python"
DRIVER = Path(__file__).with_name("aidp_mlops_driver.py")


def drive(sandbox: Any, key_pem: str) -> dict[str, Any]:
    if not AIDP_PYTHON.exists():
        if os.environ.get("MODELREG_REQUIRE_MLFLOW") == "1":  # ./dev test: the environments must be there
            pytest.fail(f"{AIDP_PYTHON} is missing: run ./dev setup")
        pytest.skip(f"{AIDP_PYTHON} is missing (./dev setup makes it)")
    settings = {
        "url": sandbox.url,
        "tenancy": TENANCY,
        "user": USER,
        "fingerprint": FINGERPRINT,
        "key_pem": key_pem,
        "platform": PLATFORM_ID,
        "workspace": WORKSPACE_KEY,
    }
    done = subprocess.run(
        [str(AIDP_PYTHON), str(DRIVER)],
        input=json.dumps(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mlops_client_drives_tracking_and_registry_and_reads_every_field(sandbox, oci_key_registered, oci_private_pem):
    sandbox.sandbox.state.lifecycle_seconds["mlflow"] = 1.0  # versions are PENDING_REGISTRATION for a second
    report = drive(sandbox, oci_private_pem)
    assert report["problems"] == []
    results = report["results"]
    assert results["answers_checked"] >= 25
    assert results["experiment"]["name"] == "conformance-b" and results["experiment"]["stage"] == "active"
    assert results["experiment_by_name"] is True
    # One experiment a page: every experiment found, over several pages.
    assert results["experiment_pages"]["pages"] >= 3
    assert {"conformance-a", "conformance-b", "conformance-c"} <= set(results["experiment_pages"]["names"])
    assert results["run"]["status"] == ["FINISHED", "FINISHED"]
    assert results["run"]["params"] == {"lr": "0.01", "epochs": "3"}
    assert results["run"]["metrics"] == {"loss": 0.25}
    assert results["run"]["tags"] == {"team": "ml", "stage": "done", "owner": "airflow"}
    assert results["metric_history"] == [0.5, 0.25]
    assert results["run_pages"] == {"pages": 2, "found_all": True} or results["run_pages"]["pages"] == 3
    assert results["registered_model"] == "conformance-model"
    assert results["created_status"] == ["PENDING_REGISTRATION", "PENDING_REGISTRATION"]
    assert results["waited_status"] == ["READY", "READY"]
    assert results["version_tags"] == {"approved": "yes"}
    assert results["version_pages"]["versions"] == ["1", "2"] and results["version_pages"]["pages"] >= 2
    assert results["registered_models"] == ["conformance-model"]


def test_the_driver_reports_a_key_the_model_drops_and_a_misread_value():
    """The checker itself: it must catch what it is there to catch (run without the client's env too)."""
    if not AIDP_PYTHON.exists():
        pytest.skip(f"{AIDP_PYTHON} is missing (./dev setup makes it)")
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import aidp_mlops_driver as d; "
        "from aidp_python_client.aidataplatform_dp import models as m; "
        "e = m.Experiment(experiment_id='1', name='x', creation_time=5); problems = []; "
        "d.check({'experiment_id': '1', 'name': 'x', 'creation_time': '5', 'extra': 1}, e, 'Experiment', 'e', problems); "
        "d.check({'name': 'x'}, m.Experiment(name='x'), 'Experiment', 'f', problems); "
        "print(json.dumps(problems))"
    )
    done = subprocess.run(
        [str(AIDP_PYTHON), "-c", code, str(DRIVER.parent)], capture_output=True, text=True, timeout=60, check=True
    )
    problems = json.loads(done.stdout)
    assert "e: key 'extra' is dropped by Experiment" in problems
    assert "e.creation_time: the client read 5, the answer said '5'" in problems
    assert "f: Experiment requires 'experiment_id', the answer lacks it" in problems
    assert sys.executable  # the test itself runs on the provider's environment
