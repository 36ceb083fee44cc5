"""Every example DAG loads (no import errors, no cycles) and runs against the sandbox, as `./dev demo` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
EXPECTED = {
    "happyrobot_train",
    "oci_vision_train",
    "nemo_register_model",
    "mlflow_log_and_register",
    "retrain_vision_pipeline",
    "retrain_happyrobot_pipeline",
    "register_nemo_pipeline",
    "retrain_many_mapped",
    "deploy_registered_models",
    # Human-in-the-loop approval needs Airflow 3.1 (tests/test_version_compat.py: not defined before it).
    *(["approve_and_promote"] if AIRFLOW_V_3_1_PLUS else []),
}
REGISTERING = {"retrain_vision_pipeline", "retrain_happyrobot_pipeline", "register_nemo_pipeline"}


@pytest.fixture(scope="module")
def dagbag(airflow_db: None) -> Any:
    from airflow_provider_modelreg.version_compat import dag_bag as DagBag

    return DagBag(str(EXAMPLES))


def test_every_example_loads_without_errors_or_cycles(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED - {"deploy_registered_models"}))
def test_examples_are_scheduled_with_retries(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.schedule == "@weekly"
    assert all(task.retries >= 1 for task in dag.tasks)


def test_registration_emits_the_asset_the_deployment_dag_is_scheduled_on(dagbag):
    watched = {asset.name for asset in dagbag.dags["deploy_registered_models"].schedule.objects}
    for dag_id in REGISTERING:
        outlets = {o.name for t in dagbag.dags[dag_id].tasks for o in t.outlets}
        assert outlets and outlets <= watched, dag_id


@pytest.fixture
def example_connections(happyrobot_conn, oci_vision_conn, aidp_conn, mlflow_conn, nemo_conn) -> dict[str, Any]:
    return {
        "happyrobot_default": happyrobot_conn,
        "oci_default": oci_vision_conn,
        "oci_aidp_default": aidp_conn,
        "mlflow_default": mlflow_conn,
        "nemo_default": nemo_conn,
    }


@pytest.mark.integration
@pytest.mark.mlflow_server
@pytest.mark.airflow_feature("example DAGs")
@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_example_runs_against_the_sandbox(dagbag, run_dag, sandbox, example_connections, dag_id):
    from scripts.hitl_responder import HitlResponder

    # approve_and_promote waits for a person when the gate says promote: answered as ./dev demo does.
    with HitlResponder("Approve", dag_ids={"approve_and_promote"}):
        result = run_dag(dagbag.dags[dag_id], example_connections)
    assert result.state == "success", result.task_states()


@pytest.mark.integration
@pytest.mark.mlflow_server
def test_the_deployment_dag_promotes_the_version_the_vision_pipeline_registered(
    dagbag, run_dag, sandbox, example_connections
):
    from airflow_provider_modelreg.hooks.mlflow import get_aliases, mlflow_hook

    assert run_dag(dagbag.dags["retrain_vision_pipeline"], example_connections).state == "success"
    result = run_dag(dagbag.dags["deploy_registered_models"], example_connections)
    assert result.state == "success", result.task_states()
    decision = result.xcom("evaluate_and_promote")
    assert decision["promote"] is True and decision["reason"] == "no version holds the alias yet"
    assert get_aliases(mlflow_hook("oci_aidp_default"), "vision-defect-detector") == {"champion": "1"}
