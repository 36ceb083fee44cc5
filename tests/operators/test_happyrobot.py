"""HappyRobotCreateModelOperator, run in real DAGs against the sandbox."""

from __future__ import annotations

import datetime as dt
import json
import re
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
    return {k: v for k, v in model.items() if k not in {"id", "created_at", "name"}}  # names carry the task key


def test_trains_a_model_and_waits_deferred(run_dag, sandbox, happyrobot_conn):
    result = run_dag(make_dag("hr_deferred", deferrable=True), {"hr": happyrobot_conn})
    assert result.state == "success"
    model = result.xcom("train")
    assert model["status"] == "active"
    assert re.fullmatch(r"support-bot \[[0-9a-f]{16}\]", model["name"])  # the name carries the task's key
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


# -- a model belongs to the task instance that created it (issue 14 item 6) --------------------------
def run_at(dag, logical_date: dt.datetime, connections: dict[str, Any], monkeypatch) -> Any:
    """Like run_dag, for a given logical date (what a backfill makes)."""
    from conftest import DagRunResult

    from airflow_provider_modelreg.version_compat import write_dag_to_db

    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    write_dag_to_db(dag)
    return DagRunResult(dag.test(logical_date=logical_date))


def mapped_dag(dag_id: str, use_cases: int):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule="@weekly", start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
        HappyRobotCreateModelOperator.partial(
            task_id="train",
            name="fleet-bot",  # the same name in every run and map index
            from_model_id=SOURCE_MODEL,
            test_sample_ids=[],
            conn_id="hr",
            wait_for_completion=False,
        ).expand_kwargs([{"use_case_id": "uc-1", "train_sample_ids": [f"s{i}"]} for i in range(use_cases)])
    return dag


def test_a_backfill_of_a_mapped_dag_trains_one_model_per_task_instance(run_dag, sandbox, happyrobot_conn, monkeypatch):
    """Same name, use case and source model in every run and map index: none may adopt another's model."""
    dag = mapped_dag("hr_backfill_mapped", use_cases=3)
    dates = [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(weeks=w) for w in range(3)]
    results = [run_at(dag, date, {"hr": happyrobot_conn}, monkeypatch) for date in dates]
    assert [r.state for r in results] == ["success"] * 3
    ids = [r.xcom("train", map_index=i)["id"] for r in results for i in range(3)]
    models = sandbox.sandbox.state.all("happyrobot")
    assert len(set(ids)) == len(ids) == len(models) == 9  # 3 runs x 3 map indexes, 9 distinct models


def test_two_dags_sharing_a_name_template_each_train_their_own(run_dag, sandbox, happyrobot_conn):
    first = run_dag(make_dag("hr_shared_name_a", wait_for_completion=False), {"hr": happyrobot_conn})
    second = run_dag(make_dag("hr_shared_name_b", wait_for_completion=False), {"hr": happyrobot_conn})
    assert first.state == second.state == "success"
    assert first.xcom("train")["id"] != second.xcom("train")["id"]
    assert len(sandbox.sandbox.state.all("happyrobot")) == 2


def model_made_outside_the_task(
    happyrobot_conn: dict[str, Any], monkeypatch: Any, name: str = "support-bot"
) -> dict[str, Any]:
    """A model with the task's use case and source (and name, unless given), made (and claimed) by no task
    instance."""
    from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
    from airflow_provider_modelreg.models.happyrobot import CreateModelRequest

    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    request = CreateModelRequest(
        use_case_id="uc-1", name=name, from_model_id=SOURCE_MODEL, train_sample_ids=["x"], test_sample_ids=[]
    )
    return HappyRobotHook(conn_id="hr").create_model(request)


def test_an_unrecorded_model_from_before_the_first_try_is_never_adopted(run_dag, sandbox, happyrobot_conn, monkeypatch):
    outside = model_made_outside_the_task(happyrobot_conn, monkeypatch)
    result = run_dag(make_dag("hr_outside_model", wait_for_completion=False), {"hr": happyrobot_conn})
    assert result.state == "success" and result.xcom("train")["id"] != outside["id"]
    assert len(sandbox.sandbox.state.all("happyrobot")) == 2


def test_another_task_instances_unclaimed_model_is_never_adopted(run_dag, sandbox, happyrobot_conn, monkeypatch):
    """Seen on a production-shaped backfill: a concurrent task instance's model, not yet claimed, was adopted.
    Its name carries that task instance's key, never this one's."""
    concurrent = model_made_outside_the_task(happyrobot_conn, monkeypatch, name="support-bot [0123456789abcdef]")
    result = run_dag(make_dag("hr_claim_window", wait_for_completion=False), {"hr": happyrobot_conn})
    assert result.state == "success" and result.xcom("train")["id"] != concurrent["id"]
    assert len(sandbox.sandbox.state.all("happyrobot")) == 2


# -- a worker killed right after its create (the fault campaign's SIGKILL double) -------------------------
class WorkerKilled(BaseException):
    """What a SIGKILL does to a try: it ends there, and nothing in the provider catches it."""


class DiesOnSet:
    """A task state store whose write never lands: the worker is killed while writing it."""

    def set(self, name: str, value: Any) -> None:
        raise WorkerKilled(f"worker killed while recording {name}")

    def get(self, name: str) -> Any:
        return None


@pytest.mark.parametrize(
    "moment",
    [
        "after the create answered, before its claim",
        "between the claim and the record",  # the claim alone once hid the model from the retry's lookup
        "with no durable store reachable",  # what the fault campaign's bare contexts have: no record, no note
    ],
)
def test_a_worker_killed_right_after_its_create_leaves_one_model(
    run_dag, sandbox, happyrobot_conn, monkeypatch, moment
):
    """Try 1's create reaches HappyRobot, then its worker dies before the model is recorded; the retry must
    find that model (the fault campaign's SIGKILL runs found two models for one task instance)."""
    from airflow_provider_modelreg import task_state

    real_remember = task_state.remember

    def remember(context: Any, name: str, value: Any, **kwargs: Any) -> bool:
        dying = name == "happyrobot" and context["ti"].try_number == 1
        if moment == "with no durable store reachable":
            if dying:
                raise WorkerKilled("worker killed after the create answered")
            return False  # what remember answers when nothing durable is reachable
        if dying and moment == "after the create answered, before its claim":
            raise WorkerKilled("worker killed after the create answered")
        if dying:  # the claim (a Variable) is written, then the worker dies writing the record
            return real_remember({**context, "task_state_store": DiesOnSet()}, name, value, **kwargs)
        return real_remember(context, name, value, **kwargs)

    monkeypatch.setattr(task_state, "remember", remember)
    if moment == "with no durable store reachable":
        monkeypatch.setattr(task_state, "recall", lambda context, name: None)
    result = run_dag(
        make_dag(f"hr_killed_{len(moment)}", retries=1, wait_for_completion=False), {"hr": happyrobot_conn}
    )
    assert result.state == "success"
    assert result.try_number("train") == 2  # try 1 was killed
    models = sandbox.sandbox.state.all("happyrobot")
    assert len(models) == 1, f"{len(models)} models for one task instance"
    assert result.xcom("train")["id"] == models[0]["id"]
