"""HappyRobotCreateModelOperator, run in real DAGs against the sandbox."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

pytestmark = pytest.mark.integration

SOURCE_MODEL = "a" * 24


def make_dag(dag_id: str, **op_kwargs):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        HappyRobotCreateModelOperator(
            task_id="train",
            conn_id="hr",
            use_case_id="uc-1",
            name=op_kwargs.pop("name", "support-bot"),
            from_model_id=op_kwargs.pop("from_model_id", SOURCE_MODEL),
            train_sample_ids=["s1", "s2"],
            test_sample_ids=["t1"],
            poll_interval=0.2,
            **op_kwargs,
        )
    return dag


def test_trains_a_model_and_waits_deferred(run_dag, sandbox, happyrobot_conn):
    result = run_dag(make_dag("hr_deferred", deferrable=True), {"hr": happyrobot_conn})
    assert result.state == "success"
    model = result.xcom("train")
    assert model["status"] == "active"
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1
