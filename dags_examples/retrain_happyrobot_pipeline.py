"""Weekly retraining on HappyRobot: clone and train a model (deferred wait until active) → log the run to
an MLflow tracking server → register a model version from that run.

Connections: ``happyrobot_default`` and ``mlflow_default`` (any MLflow server). Registering updates the
``modelreg/happyrobot-support-bot`` asset, which schedules ``deploy_registered_models``.
"""

from __future__ import annotations

import datetime as dt

from _assets import HAPPYROBOT_MODEL
from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator

with DAG(
    dag_id="retrain_happyrobot_pipeline",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "use_case_id": Param("uc-support", type="string"),
        "from_model_id": Param("0123456789abcdef01234567", type="string", minLength=24, maxLength=24),
        "train_sample_ids": Param(["sample-1", "sample-2", "sample-3"], type="array"),
        "test_sample_ids": Param(["sample-9"], type="array"),
    },
    tags=["modelreg", "happyrobot", "mlflow", "pipeline"],
) as dag:
    train = HappyRobotCreateModelOperator(
        task_id="train_model",
        use_case_id="{{ params.use_case_id }}",
        name="support-bot-{{ dag_run.run_after | ts_nodash }}",
        from_model_id="{{ params.from_model_id }}",
        train_sample_ids="{{ params.train_sample_ids }}",
        test_sample_ids="{{ params.test_sample_ids }}",
        deferrable=True,
        poll_interval=POLL_SECONDS,
    )
    log_run = MlflowCreateRunOperator(
        task_id="log_training_run",
        experiment_name="happyrobot-support-bot",
        params_from="train_model",
        param_keys={"happyrobot_model_id": "id", "from_model_id": "from_model_id", "use_case_id": "use_case_id"},
        metrics={"train_samples": "{{ params.train_sample_ids | length }}"},
        tags={"happyrobot.status": "{{ ti.xcom_pull(task_ids='train_model')['status'] }}"},
    )
    register = MlflowCreateModelVersionOperator(
        task_id="register_model_version",
        name="happyrobot-support-bot",
        source="runs:/{{ ti.xcom_pull(task_ids='log_training_run')['run_id'] }}/model",
        run_id="{{ ti.xcom_pull(task_ids='log_training_run')['run_id'] }}",
        tags={"happyrobot_model_id": "{{ ti.xcom_pull(task_ids='train_model')['id'] }}"},
        deferrable=True,
        poll_interval=POLL_SECONDS,
        outlets=[HAPPYROBOT_MODEL],
    )
    train >> log_run >> register
