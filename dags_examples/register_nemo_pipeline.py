"""After a fine-tuning job: register the fine-tuned model entity in NeMo Platform → wait (deferred) until
the platform has analysed its fileset and filled ``spec`` → log it as an MLflow run → register a version.

Connections: ``nemo_default`` and ``mlflow_default``. Registering updates ``modelreg/nemo-support-llm``.
"""

from __future__ import annotations

import datetime as dt

from _assets import NEMO_MODEL
from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param

from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator
from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor

with DAG(
    dag_id="register_nemo_pipeline",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "workspace": Param("default", type="string"),
        "fileset": Param("default/support-llm-lora-checkpoints", type="string"),
        "base_model": Param("meta/llama-3.1-8b-instruct", type="string"),
    },
    tags=["modelreg", "nemo", "mlflow", "pipeline"],
) as dag:
    register_entity = NemoCreateModelOperator(
        task_id="register_model_entity",
        workspace="{{ params.workspace }}",
        name="support-llm-{{ dag_run.run_after | ts_nodash | lower }}",  # the platform refuses upper case
        fileset="{{ params.fileset }}",
        base_model="{{ params.base_model }}",
        description="LoRA fine-tune of {{ params.base_model }} on support transcripts",
        wait_for_completion=False,
    )
    # [START howto_sensor_nemo_model_spec]
    wait_for_spec = NemoModelSpecSensor(
        task_id="wait_for_spec",
        workspace="{{ params.workspace }}",
        name="{{ ti.xcom_pull(task_ids='register_model_entity')['name'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=3600,
    )
    # [END howto_sensor_nemo_model_spec]
    log_run = MlflowCreateRunOperator(
        task_id="log_model_run",
        experiment_name="nemo-support-llm",
        params_from="wait_for_spec",
        param_keys={"nemo_model": "name", "base_model": "base_model", "fileset": "fileset"},
    )
    register = MlflowCreateModelVersionOperator(
        task_id="register_model_version",
        name="nemo-support-llm",
        source="nemo://{{ params.fileset }}",
        run_id="{{ ti.xcom_pull(task_ids='log_model_run')['run_id'] }}",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        outlets=[NEMO_MODEL],
    )
    register_entity >> wait_for_spec >> log_run >> register
