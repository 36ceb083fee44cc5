"""OCIVisionModelSensor, sync and deferrable, in real DAGs against the sandbox."""

from __future__ import annotations

import datetime as dt

import pytest
from fixtures.oci_vision import vision_arguments

from airflow_provider_modelreg.hooks.oci_vision import CreatedModel
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.oci_vision import CreateModelDetails
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

pytestmark = pytest.mark.integration


def create_model(hook, display_name: str = "defects") -> CreatedModel:
    return hook.create_model(validate_request(CreateModelDetails, vision_arguments(display_name=display_name)))


def sensor_dag(dag_id: str, deferrable: bool, timeout: float = 60, **ids: str):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        OCIVisionModelSensor(
            task_id="wait", conn_id="oci_vision", deferrable=deferrable, poke_interval=0.2, timeout=timeout, **ids
        )
    return dag


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_waits_until_active_and_returns_the_model_with_metrics(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook, deferrable
):
    model_id = create_model(oci_vision_hook).model["id"]
    result = run_dag(
        sensor_dag(f"oci_vision_sensor_{deferrable}", deferrable, model_id=model_id), {"oci_vision": oci_vision_conn}
    )
    assert result.state == "success"
    model = result.xcom("wait")
    assert model["id"] == model_id
    assert model["lifecycleState"] == "ACTIVE"
    assert 0 < model["precision"] <= 1 and model["testImageCount"] > 0


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_a_failed_model_fails_the_sensor_with_details_and_work_request_errors(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook, capfd, deferrable
):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="oci_vision", match="bad", reason="GPU quota"))
    created = create_model(oci_vision_hook, display_name="bad-model")
    dag = sensor_dag(
        f"oci_vision_sensor_failed_{deferrable}",
        deferrable,
        model_id=created.model["id"],
        work_request_id=created.work_request_id,
    )
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.state == "failed"
    out = capfd.readouterr().out
    ref = f"model_id={created.model['id']}, work_request_id={created.work_request_id}"
    assert f"OCI Vision model {ref} ended FAILED: GPU quota" in out
    assert "work request errors: ModelTrainingFailed: Training of model" in out


def test_without_a_work_request_the_failure_still_carries_lifecycle_details(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook, capfd
):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="oci_vision", match="bad", reason="GPU quota"))
    model_id = create_model(oci_vision_hook, display_name="bad-model").model["id"]
    result = run_dag(
        sensor_dag("oci_vision_sensor_failed_no_wr", False, model_id=model_id), {"oci_vision": oci_vision_conn}
    )
    assert result.state == "failed"
    assert f"OCI Vision model model_id={model_id} ended FAILED: GPU quota" in capfd.readouterr().out


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_times_out_naming_the_model(run_dag, sandbox, oci_vision_conn, oci_vision_hook, capfd, deferrable):
    sandbox.sandbox.state.lifecycle_seconds["oci_vision"] = 120
    model_id = create_model(oci_vision_hook).model["id"]
    dag = sensor_dag(f"oci_vision_sensor_timeout_{deferrable}", deferrable, timeout=1, model_id=model_id)
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.state == "failed"
    out = capfd.readouterr().out
    assert f"model_id={model_id}" in out and "timed out" in out.lower()
