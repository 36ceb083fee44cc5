"""Weekly: evaluate a model, log the evaluation as an MLflow run, register a model version from that run,
and wait (deferred) until the version is READY.

Works with either flavour, chosen by the ``conn_id`` param:
``mlflow_default`` (type ``mlflow``: any MLflow tracking server, host = tracking URI, e.g.
``http://127.0.0.1:5000``) or ``oci_aidp_default`` (type ``oci_aidp``: OCI AI Data Platform, with OCI
credentials, ``ai_data_platform_id`` and ``workspace_key``). A retried task reuses the run and the
version its first try made.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param, task

from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor

with DAG(
    dag_id="mlflow_log_and_register",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=1)},
    params={
        "conn_id": Param("mlflow_default", enum=["mlflow_default", "oci_aidp_default"]),
        "experiment_name": Param("defect-detector", type="string", minLength=1),
        "model_name": Param("defect-detector", type="string", minLength=1, maxLength=255),
        "learning_rate": Param(0.001, type="number"),
    },
    tags=["modelreg", "mlflow", "example"],
) as dag:

    @task
    def evaluate() -> dict[str, Any]:
        """Stands in for a real evaluation step: whatever it returns can be logged as metrics."""
        return {"precision": 0.91, "recall": 0.84, "test_images": 120, "dataset": "defects-v3"}

    # [START howto_operator_mlflow_create_run]
    log_run = MlflowCreateRunOperator(
        task_id="log_run",
        conn_id="{{ params.conn_id }}",
        experiment_name="{{ params.experiment_name }}",
        run_name="evaluation-{{ dag_run.run_after | ds }}",
        run_params={"learning_rate": "{{ params.learning_rate }}", "dataset": "defects-v3"},
        metrics_from="evaluate",
        metric_keys={"precision": "precision", "recall": "recall", "test_images": "test_images"},
        tags={"team": "vision", "airflow.logical_date": "{{ dag_run.run_after | ds }}"},
    )
    # [END howto_operator_mlflow_create_run]

    # [START howto_operator_mlflow_create_model_version]
    register = MlflowCreateModelVersionOperator(
        task_id="register",
        conn_id="{{ params.conn_id }}",
        name="{{ params.model_name }}",
        source="runs:/{{ ti.xcom_pull(task_ids='log_run')['run_id'] }}/model",
        run_id="{{ ti.xcom_pull(task_ids='log_run')['run_id'] }}",
        description="Evaluated on {{ dag_run.run_after | ds }}",
        tags={"stage": "candidate"},
        wait_for_completion=False,  # the sensor below waits, in the triggerer
    )
    # [END howto_operator_mlflow_create_model_version]

    # [START howto_sensor_mlflow_model_version]
    wait_until_ready = MlflowModelVersionSensor(
        task_id="wait_until_ready",
        conn_id="{{ params.conn_id }}",
        name="{{ params.model_name }}",
        version="{{ ti.xcom_pull(task_ids='register')['version'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=1800,
    )
    # [END howto_sensor_mlflow_model_version]

    evaluate() >> log_run >> register >> wait_until_ready
