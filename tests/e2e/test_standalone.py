"""End to end under real Airflow components: `airflow standalone` (scheduler, triggerer, dag-processor and
API server on loopback) runs the HappyRobot example DAG; its deferred waits run on the triggerer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fixtures.processes import stop_group

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "happyrobot_train"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def api(base: str, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow standalone exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")


def test_example_dag_runs_under_scheduler_and_triggerer(tmp_path, sandbox, happyrobot_conn):
    home = tmp_path / "airflow"
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in (f"{DAG_ID}.py", "_settings.py", ".airflowignore"):
        shutil.copy(ROOT / "dags_examples" / name, dags)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # standalone runs `airflow`
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW_CONN_HAPPYROBOT_DEFAULT": json.dumps(happyrobot_conn),
        }
    )
    log = tmp_path / "standalone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: api(base, "GET", f"/api/v2/dags/{DAG_ID}"), 240, "the DAG to be parsed", proc, log)
        run = api(base, "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", {"logical_date": None})
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}"
        finished = wait_until(
            lambda: (r := api(base, "GET", path))["state"] in {"success", "failed"} and r, 300, "the DAG run", proc, log
        )
        tis = api(base, "GET", f"{path}/taskInstances")["task_instances"]
        assert finished["state"] == "success", {t["task_id"]: t["state"] for t in tis}
        # The triggerer writes what it ran next to the task's log: one trigger log per deferred task.
        run_logs = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run['dag_run_id']}"
        for task_id in ("train_model",):  # the sensor after it may find the model active at its first poke
            trigger_logs = list((run_logs / f"task_id={task_id}").glob("*.trigger.*.log"))
            assert trigger_logs, f"{task_id} did not defer to the triggerer"
            fired = "".join(p.read_text(errors="replace") for p in trigger_logs)
            assert "Trigger fired event" in fired and "'status': 'success'" in fired
        # The scheduler may also start the latest scheduled run; this run's model is the one its XCom names.
        xcom = api(base, "GET", f"{path}/taskInstances/train_model/xcomEntries/return_value")
        model_id = (xcom["value"] if isinstance(xcom["value"], dict) else json.loads(xcom["value"]))["id"]
        assert sandbox.sandbox.state.get("happyrobot", model_id) is not None
    finally:
        stop_group(proc)
