"""Weekly: retrain one HappyRobot model per use case in parallel (dynamic task mapping), then log one
MLflow run per trained model. Each mapped task instance has its own idempotency key, so a retried map
index never duplicates another's model.
"""

from __future__ import annotations

import datetime as dt

from _settings import POLL_SECONDS
from airflow.sdk import DAG, task

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

USE_CASES = [
    {"use_case_id": "uc-billing", "name": "billing-bot", "from_model_id": "aaaaaaaaaaaaaaaaaaaaaaa1"},
    {"use_case_id": "uc-shipping", "name": "shipping-bot", "from_model_id": "aaaaaaaaaaaaaaaaaaaaaaa2"},
    {"use_case_id": "uc-returns", "name": "returns-bot", "from_model_id": "aaaaaaaaaaaaaaaaaaaaaaa3"},
]

with DAG(
    dag_id="retrain_many_mapped",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=2)},
    tags=["modelreg", "happyrobot", "mlflow", "mapping"],
) as dag:

    @task
    def training_requests() -> list[dict[str, object]]:
        """In a real pipeline: the use cases whose data changed this week."""
        return [uc | {"train_sample_ids": [f"{uc['use_case_id']}-s{i}" for i in range(3)]} for uc in USE_CASES]

    trained = HappyRobotCreateModelOperator.partial(
        task_id="train_model", test_sample_ids=[], deferrable=True, poll_interval=POLL_SECONDS
    ).expand_kwargs(training_requests())

    MlflowCreateRunOperator.partial(task_id="log_training_run", experiment_name="happyrobot-fleet").expand(
        tags=trained.output.map(lambda model: {"happyrobot.model_id": model["id"], "use_case": model["use_case_id"]})
    )
