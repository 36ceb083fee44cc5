"""task_state: what one try of a task instance remembers, the next try of the same instance recalls; claims
are seen by every task instance. Run in real DAGs (dag.test), on Airflow 3.3's task_state_store and 3.2's
Variables alike."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_modelreg import task_state

pytestmark = pytest.mark.integration

SEEN: dict[str, list[Any]] = {}


def _dag(dag_id: str, retries: int = 1):
    from airflow.sdk import DAG, BaseOperator

    class RememberThenFail(BaseOperator):
        def execute(self, context: Any) -> Any:
            ti = context["ti"]
            before = task_state.recall(context, "svc.thing")
            SEEN.setdefault(dag_id, []).append(before)
            if before is None:
                assert task_state.remember(context, "svc.thing", f"id-{ti.task_id}") is True
                raise RuntimeError("crash after the create")  # the retry must reconnect
            return {"recalled": before, "claimed": task_state.is_claimed("svc.thing", before)}

    class Probe(BaseOperator):
        def execute(self, context: Any) -> Any:
            return {
                "own": task_state.recall(context, "svc.thing"),  # another task instance's record is not ours
                "a_claimed": task_state.is_claimed("svc.thing", "id-a"),
                "other_service": task_state.is_claimed("svc.other", "id-a"),
                "never": task_state.is_claimed("svc.thing", "id-nobody"),
            }

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        a = RememberThenFail(task_id="a", retries=retries, retry_delay=dt.timedelta(seconds=0))
        a >> Probe(task_id="probe")
    return dag


def test_a_retry_recalls_what_its_first_try_remembered_and_others_see_the_claim(run_dag):
    result = run_dag(_dag("task_state_retry"))
    assert result.state == "success"
    assert result.try_number("a") == 2
    assert SEEN["task_state_retry"] == [None, "id-a"]
    assert result.xcom("a") == {"recalled": "id-a", "claimed": True}
    assert result.xcom("probe") == {"own": None, "a_claimed": True, "other_service": False, "never": False}


def test_records_belong_to_their_run(run_dag):
    # A second run of the same DAG starts with nothing recalled: the record is per task instance.
    first = run_dag(_dag("task_state_runs"))
    second = run_dag(_dag("task_state_runs"))
    assert first.state == second.state == "success"
    assert first.run_id != second.run_id
    assert SEEN["task_state_runs"] == [None, "id-a", None, "id-a"]


def test_outside_a_task_nothing_is_recorded():
    class FakeTI:
        dag_id, task_id, run_id, map_index = "d", "t", "r", -1

    context = {"ti": FakeTI()}
    assert task_state.remember(context, "svc.thing", "x") is False
    assert task_state.recall(context, "svc.thing") is None


def test_none_cannot_be_remembered():
    with pytest.raises(ValueError, match="must not be None"):
        task_state.remember({"ti": None}, "svc.thing", None)
