"""HappyRobotCreateModelOperator, run in real DAGs against the sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

SOURCE_MODEL = "a" * 24


def make_dag(dag_id: str, retries: int = 0, **overrides: Any):
    from airflow.sdk import DAG

    kwargs: dict[str, Any] = {
        "use_case_id": "uc-1",
        "name": "support-bot",
        "from_model_id": SOURCE_MODEL,
        "train_sample_ids": ["s1", "s2"],
        "test_sample_ids": ["t1"],
        "poll_interval": 0.2,
        "conn_id": "hr",
    } | overrides
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        HappyRobotCreateModelOperator(task_id="train", retries=retries, retry_delay=dt.timedelta(seconds=0), **kwargs)
    return dag


def comparable(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in {"id", "created_at"}}


def test_trains_a_model_and_waits_deferred(run_dag, sandbox, happyrobot_conn):
    result = run_dag(make_dag("hr_deferred", deferrable=True), {"hr": happyrobot_conn})
    assert result.state == "success"
    model = result.xcom("train")
    assert model["status"] == "active"
    assert model["name"] == "support-bot"
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1


def test_deferred_and_sync_waits_give_the_same_result(run_dag, sandbox, happyrobot_conn):
    deferred = run_dag(make_dag("hr_same_deferred", deferrable=True), {"hr": happyrobot_conn})
    sync = run_dag(make_dag("hr_same_sync", deferrable=False), {"hr": happyrobot_conn})
    assert deferred.state == sync.state == "success"
    assert comparable(deferred.xcom("train")) == comparable(sync.xcom("train"))


def test_without_waiting_returns_the_new_model_at_once(run_dag, sandbox, happyrobot_conn):
    result = run_dag(make_dag("hr_nowait", wait_for_completion=False), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.xcom("train")["status"] in {"pending", "training"}


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"from_model_id": "short"}, "from_model_id", "at least 24 characters"),
        ({"train_sample_ids": []}, "train_sample_ids", "at least 1 item"),
        ({"name": "  "}, "name", "at least 1 character"),
    ],
)
def test_bad_input_fails_before_any_request(run_dag, sandbox, happyrobot_conn, capfd, overrides, field, rule):
    result = run_dag(make_dag(f"hr_invalid_{field}", retries=2, **overrides), {"hr": happyrobot_conn})
    assert result.state == "failed"
    assert result.try_number("train") == 1  # bad input is not retried
    out = capfd.readouterr().out
    assert f"{field}: " in out and rule in out
    assert sandbox.sandbox.state.counters == {}  # no create reached the service
    assert sandbox.sandbox.state.all("happyrobot") == []


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_failed_training_fails_the_task_with_the_reason(run_dag, sandbox, happyrobot_conn, capfd, deferrable):
    sandbox.sandbox.state.outcome_rules.append(
        OutcomeRule(service="happyrobot", match="doomed", reason="not enough labelled calls")
    )
    result = run_dag(
        make_dag(f"hr_failed_{deferrable}", retries=2, name="doomed-bot", deferrable=deferrable),
        {"hr": happyrobot_conn},
    )
    assert result.state == "failed"
    assert result.try_number("train") == 1  # a terminal state is final: no retry
    out = capfd.readouterr().out
    assert "ended failed: not enough labelled calls" in out


def test_a_retried_task_makes_no_second_model(run_dag, sandbox, happyrobot_conn):
    # Try 1 creates the model, then dies on its first status read (a 400 is not retried in-task).
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=400, method="GET", path="/models/", count=1))
    result = run_dag(make_dag("hr_retry", retries=1), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.try_number("train") == 2
    models = sandbox.sandbox.state.all("happyrobot")
    assert len(models) == 1
    assert result.xcom("train")["id"] == models[0]["id"]


def test_an_ambiguous_create_failure_is_looked_up_not_resent(run_dag, sandbox, happyrobot_conn):
    # The create is processed but its answer is lost: the operator must find it, not create another.
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", count=1))
    result = run_dag(make_dag("hr_drop_after"), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1


def test_retries_through_throttling_then_succeeds(run_dag, sandbox, happyrobot_conn):
    sandbox.sandbox.faults.rules.extend(
        [
            FaultRule(kind="status", status=429, retry_after=0.1, method="POST", count=1),
            FaultRule(kind="status", status=503, method="GET", count=1),
        ]
    )
    result = run_dag(make_dag("hr_throttled"), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert sandbox.sandbox.faults.injected == {"status_429": 1, "status_503": 1}
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1
