"""MlflowModelVersionSensor and MlflowRunSensor in DAGs, sync and deferred, against both flavours."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from airflow_provider_modelreg.models.mlflow import (
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
)
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor, MlflowRunSensor

pytestmark = pytest.mark.integration

CONN = "mlf"


def sensor_dag(dag_id: str, sensor):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        sensor()
    return dag


def make_version(target, name: str) -> dict:
    hook = target.hook()
    hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    return hook.create_model_version(CreateModelVersionRequest(name=name, source="s3://bucket/model"))


def make_run(target, status: str) -> str:
    hook = target.hook()
    experiment_id = hook.get_or_create_experiment(target.unique("exp"))["experiment_id"]
    run_id = hook.create_run(CreateRunRequest(experiment_id=experiment_id))["info"]["run_id"]
    if status != "RUNNING":
        hook.set_run_status(run_id, status)
    return run_id


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_model_version_sensor_waits_until_ready(run_dag, mlflow_target, deferrable):
    name = mlflow_target.unique("model")
    version = make_version(mlflow_target, name)
    if mlflow_target.is_sandbox:
        assert version["status"] == "PENDING_REGISTRATION"  # there is something to wait for

    def sensor():
        return MlflowModelVersionSensor(
            task_id="wait",
            conn_id=CONN,
            name=name,
            version="{{ params.version }}",
            params={"version": version["version"]},
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=60,
        )

    result = run_dag(sensor_dag(f"mlflow_mv_sensor_{deferrable}", sensor), {CONN: mlflow_target.conn})
    assert result.state == "success"
    assert result.xcom("wait")["status"] == "READY"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_model_version_sensor_fails_on_failed_registration(run_dag, aidp_target, capfd, deferrable):
    aidp_target.sandbox.sandbox.state.outcome_rules.append(
        OutcomeRule(service="mlflow", match="doomed", reason="copy failed")
    )
    version = make_version(aidp_target, "doomed-model")

    def sensor():
        return MlflowModelVersionSensor(
            task_id="wait",
            conn_id=CONN,
            name="doomed-model",
            version=version["version"],
            deferrable=deferrable,
            poke_interval=0.2,
            timeout=60,
        )

    result = run_dag(sensor_dag(f"mlflow_mv_sensor_fails_{deferrable}", sensor), {CONN: aidp_target.conn})
    assert result.state == "failed"
    out = capfd.readouterr().out
    assert "ended FAILED_REGISTRATION: copy failed" in out


@pytest.mark.parametrize(
    ("status", "outcome", "deferrable"),
    [
        ("FINISHED", "success", False),
        ("FINISHED", "success", True),
        ("KILLED", "failed", True),
        ("FAILED", "failed", False),
    ],
    ids=["finished-sync", "finished-deferred", "killed-deferred", "failed-sync"],
)
def test_run_sensor_succeeds_on_finished_and_fails_on_failed_or_killed(
    run_dag, mlflow_target, capfd, status, outcome, deferrable
):
    run_id = make_run(mlflow_target, status)

    def sensor():
        # [START howto_sensor_mlflow_run]
        return MlflowRunSensor(
            task_id="wait", conn_id=CONN, run_id=run_id, deferrable=deferrable, poke_interval=0.2, timeout=60
        )
        # [END howto_sensor_mlflow_run]

    result = run_dag(sensor_dag(f"mlflow_run_sensor_{status}_{deferrable}", sensor), {CONN: mlflow_target.conn})
    assert result.state == outcome
    if outcome == "success":
        assert result.xcom("wait")["info"]["status"] == "FINISHED"
    else:
        assert f"MLflow run run_id={run_id} ended {status}" in capfd.readouterr().out


def test_run_sensor_defers_until_something_else_closes_the_run(run_dag, mlflow_target, lifecycle_triggers, monkeypatch):
    """A RUNNING run is waited for in the triggerer; an upstream task starts a closer that finishes it."""
    from airflow.sdk import DAG, task

    from airflow_provider_modelreg.spec import Waiter

    run_id = make_run(mlflow_target, "RUNNING")
    hook = mlflow_target.hook()
    # The trigger has read the run RUNNING: an evaluation of it once the sensor has deferred.
    polled_running = threading.Event()
    evaluate = Waiter.evaluate

    def spy(self: Waiter, data: Any) -> Any:
        obs = evaluate(self, data)
        if lifecycle_triggers and obs.state == "RUNNING":
            polled_running.set()
        return obs

    monkeypatch.setattr(Waiter, "evaluate", spy)

    with DAG("mlflow_run_sensor_open", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:

        @task
        def start_closer() -> None:
            # Another system finishing the run once the deferred sensor's trigger has seen it RUNNING (a thread:
            # dag.test runs tasks in this process); waiting for that, not a fixed delay, keeps this independent
            # of load.
            def close_after_deferral() -> None:
                polled_running.wait(timeout=60)
                hook.set_run_status(run_id, "FINISHED")

            threading.Thread(target=close_after_deferral, daemon=True).start()

        start_closer() >> MlflowRunSensor(
            task_id="wait", conn_id=CONN, run_id=run_id, deferrable=True, poke_interval=0.2, timeout=60
        )

    result = run_dag(dag, {CONN: mlflow_target.conn})
    assert result.state == "success"
    assert result.xcom("wait")["info"]["status"] == "FINISHED"
    assert lifecycle_triggers and lifecycle_triggers[0]["ref"]["run_id"] == run_id
    assert polled_running.is_set()
