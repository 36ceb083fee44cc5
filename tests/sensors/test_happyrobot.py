"""HappyRobotModelSensor, sync and deferrable, in real DAGs against the sandbox."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

pytestmark = pytest.mark.integration


def create_model(monkeypatch, conn, name: str = "bot") -> str:
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(conn))
    request = CreateModelRequest(
        use_case_id="uc", name=name, from_model_id="c" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )
    return HappyRobotHook(conn_id="hr").create_model(request)["id"]


def sensor_dag(dag_id: str, model_id: str, deferrable: bool, timeout: float = 60):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        HappyRobotModelSensor(
            task_id="wait", conn_id="hr", model_id=model_id, deferrable=deferrable, poke_interval=0.2, timeout=timeout
        )
    return dag


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_waits_until_active_and_returns_the_model(run_dag, sandbox, happyrobot_conn, monkeypatch, deferrable):
    model_id = create_model(monkeypatch, happyrobot_conn)
    result = run_dag(sensor_dag(f"hr_sensor_{deferrable}", model_id, deferrable), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.xcom("wait")["id"] == model_id
    assert result.xcom("wait")["status"] == "active"


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_failed_model_fails_the_sensor_with_the_reason(
    run_dag, sandbox, happyrobot_conn, monkeypatch, capfd, deferrable
):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="happyrobot", match="bad", reason="GPU quota"))
    model_id = create_model(monkeypatch, happyrobot_conn, name="bad-bot")
    result = run_dag(sensor_dag(f"hr_sensor_failed_{deferrable}", model_id, deferrable), {"hr": happyrobot_conn})
    assert result.state == "failed"
    assert f"HappyRobot model model_id={model_id} ended failed: GPU quota" in capfd.readouterr().out


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_times_out_naming_the_model(run_dag, sandbox, happyrobot_conn, monkeypatch, capfd, deferrable):
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = 120
    model_id = create_model(monkeypatch, happyrobot_conn)
    result = run_dag(
        sensor_dag(f"hr_sensor_timeout_{deferrable}", model_id, deferrable, timeout=1), {"hr": happyrobot_conn}
    )
    assert result.state == "failed"
    out = capfd.readouterr().out
    assert f"model_id={model_id}" in out and "timed out" in out.lower()


@pytest.mark.parametrize("model_id", ["../use-cases/x?y=1", "short"])
def test_a_model_id_that_is_not_24_characters_fails_at_once_without_a_call(
    run_dag, sandbox, happyrobot_conn, capfd, model_id
):
    from airflow.sdk import DAG

    with DAG(f"hr_sensor_bad_id_{len(model_id)}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        HappyRobotModelSensor(task_id="wait", conn_id="hr", model_id=model_id, retries=3, poke_interval=0.1)
    result = run_dag(dag, {"hr": happyrobot_conn})
    assert result.state == "failed" and result.try_number("wait") == 1
    assert "model_id: String should have at least 24 characters" in capfd.readouterr().out
