"""``on_failed_resource``: what a retry does when the resource an earlier try created has ended failed.
``"fail"`` (the default) fails with the service's reason; ``"recreate"`` creates a new one (under a new
idempotency key, so the service does not hand back the failed one) and leaves the failed one as it is."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fixtures.waiting import wait_until

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

SANDBOX: dict[str, Any] = {}


class FirstTryDiesAsItsModelFails(HappyRobotCreateModelOperator):
    """The first try's worker dies after the create; meanwhile the model's training fails. The cause is
    gone before the retry (the outcome rule is lifted), as after a fixed dataset."""

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        if self._first_try:
            from airflow_provider_modelreg.sandbox.happyrobot import view

            state = SANDBOX["state"]
            wait_until(
                lambda: [view(state, m)["status"] for m in state.all("happyrobot")],
                lambda statuses: statuses == ["failed"],
                what="the first try's model to end failed",
            )
            state.outcome_rules.clear()
            raise RuntimeError("worker died")
        return super().wait(ref, resource)

    def execute(self, context: Any) -> Any:
        self._first_try = context["ti"].try_number == 1
        return super().execute(context)


def make_dag(dag_id: str, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        FirstTryDiesAsItsModelFails(
            task_id="train",
            use_case_id="uc-1",
            name="doomed-bot",
            from_model_id="a" * 24,
            train_sample_ids=["s1"],
            test_sample_ids=["t1"],
            poll_interval=0.2,
            conn_id="hr",
            retries=1,
            retry_delay=dt.timedelta(seconds=0),
            **kwargs,
        )
    return dag


def failing_sandbox(sandbox: Any) -> Any:
    state = sandbox.sandbox.state
    state.outcome_rules.append(OutcomeRule(service="happyrobot", match="doomed", reason="bad samples"))
    SANDBOX["state"] = state
    return state


def test_by_default_a_retry_fails_with_the_reason_of_the_failed_resource(run_dag, sandbox, happyrobot_conn, capfd):
    state = failing_sandbox(sandbox)
    result = run_dag(make_dag("recreate_default"), {"hr": happyrobot_conn})
    assert result.task_state("train") == "failed" and result.try_number("train") == 2
    assert len(state.all("happyrobot")) == 1  # nothing created anew
    assert "ended failed: bad samples" in capfd.readouterr().out


def test_recreate_makes_a_new_resource_and_leaves_the_failed_one(run_dag, sandbox, happyrobot_conn):
    from airflow_provider_modelreg.sandbox.happyrobot import view

    state = failing_sandbox(sandbox)
    result = run_dag(make_dag("recreate_asked", on_failed_resource="recreate"), {"hr": happyrobot_conn})
    assert result.state == "success" and result.try_number("train") == 2
    models = {m["id"]: view(state, m)["status"] for m in state.all("happyrobot")}
    assert len(models) == 2
    assert models[result.xcom("train")["id"]] == "active"
    assert sorted(models.values()) == ["active", "failed"]


def test_on_failed_resource_is_checked_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="on_failed_resource: must be one of 'fail', 'recreate'"):
        HappyRobotCreateModelOperator(
            task_id="t", use_case_id="u", name="n", from_model_id="a" * 24, train_sample_ids=["s"], test_sample_ids=[],
            on_failed_resource="retry",
        )  # fmt: skip
