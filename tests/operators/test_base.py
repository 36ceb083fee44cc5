"""CreateAndWaitOperator's resumable create: a try that dies after the create leaves a record; the retry
reconnects to that resource (waits again, or returns it when done) instead of creating another."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, ClassVar

import pytest

from airflow_provider_modelreg import task_state
from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS

pytestmark = pytest.mark.integration

CREATES: dict[str, int] = {}
# What each DAG's retry found of the XCom its first try pushed (None: Airflow had cleared it).
SEEN_BY_RETRY: dict[str, Any] = {}
HOLD_SECONDS = 3.0
FIRST_DEFERRAL_SECONDS = 1.0


class DiesAfterCreate(HappyRobotCreateModelOperator):
    """Its first try is killed right after the create answered (as a worker OOM or kill -9 would).

    The model keeps training until the retry starts waiting and ends ``HOLD_SECONDS`` later, so the retry
    reconnects to a model in progress and its wait is seen, however slowly a loaded machine runs the retry.
    """

    sandbox_state: ClassVar[Any] = None

    def create(self, context: Any, request: Any) -> Any:
        CREATES[self.dag_id] = CREATES.get(self.dag_id, 0) + 1
        return super().create(context, request)

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        record = self.sandbox_state.get("happyrobot", ref["model_id"])
        if self._first_try:
            record["_created"] = time.time() + 3600  # still training whenever the retry comes
            raise RuntimeError("worker died")
        record["_created"] = time.time()  # from now on it trains for the sandbox's HOLD_SECONDS lifecycle
        return super().wait(ref, resource)

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        self._first_try = ti.try_number == 1
        if self._first_try:
            ti.xcom_push(key="first_try", value=True)
        else:
            SEEN_BY_RETRY[self.dag_id] = ti.xcom_pull(task_ids=self.task_id, key="first_try")
        return super().execute(context)


class FirstDeferralTimesOut(DiesAfterCreate):
    """Its first try defers, and that deferral times out with the model still training: the try fails as any
    wait that ran out does. The retry's wait sees the model end ``HOLD_SECONDS`` after it starts waiting."""

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        record = self.sandbox_state.get("happyrobot", ref["model_id"])
        record["_created"] = time.time() + (3600 if self._first_try else 0)
        # Set on each try: dag.test() may run every try on the same operator object.
        self.wait_timeout = FIRST_DEFERRAL_SECONDS if self._first_try else 600.0
        return HappyRobotCreateModelOperator.wait(self, ref, resource)


# A HappyRobot model's create, as each test here asks for it (the name and the wait aside).
MODEL = {"use_case_id": "uc-1", "from_model_id": "a" * 24, "train_sample_ids": ["s1"], "test_sample_ids": ["t1"]}


def make_dag(dag_id: str, operator: type[DiesAfterCreate] = DiesAfterCreate, **overrides: Any):
    from airflow.sdk import DAG

    kwargs: dict[str, Any] = MODEL | {"name": "support-bot", "poll_interval": 0.2, "conn_id": "hr"} | overrides
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        operator(task_id="train", retries=1, retry_delay=dt.timedelta(seconds=0), **kwargs)
    return dag


@pytest.mark.airflow_feature("durable")
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_a_retry_reconnects_to_the_resource_its_first_try_created(run_dag, sandbox, happyrobot_conn, capfd, deferrable):
    dag_id = f"resume_{'deferred' if deferrable else 'sync'}"
    DiesAfterCreate.sandbox_state = sandbox.sandbox.state
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = HOLD_SECONDS
    result = run_dag(make_dag(dag_id, deferrable=deferrable), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.try_number("train") == 2
    assert CREATES[dag_id] == 1  # the retry never reached create (nor its lookup)
    models = sandbox.sandbox.state.all("happyrobot")
    assert len(models) == 1
    assert result.xcom("train")["id"] == models[0]["id"]
    assert result.xcom("train")["status"] == "active"
    # The retry found no XCom of the first try (Airflow clears them: apache/airflow#71211), yet reconnected:
    # the record lives in task_state, not in XCom.
    assert SEEN_BY_RETRY[dag_id] is None
    out = capfd.readouterr().out
    assert "Reconnecting to HappyRobot model" in out
    assert "ended active" in out  # the outcome is in the task's log
    assert "next check in" in out  # a check says when the next one is (a trigger: its first and each change)
    if deferrable:
        assert "reached active; resuming the task" in out  # the trigger's log says the final state


@pytest.mark.airflow_feature("durable")
def test_a_create_that_is_not_durable_is_made_again_by_its_retry(run_dag, sandbox, happyrobot_conn, capfd):
    """``durable=False`` (ResumableJobMixin's meaning): nothing recorded, nothing reconnected: the retry goes
    through the create again. The create's own idempotency (HappyRobot: its lookup by the task instance's key)
    still applies, so it finds the first try's model rather than making a second."""
    dag_id = "resume_not_durable"
    DiesAfterCreate.sandbox_state = sandbox.sandbox.state
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = HOLD_SECONDS
    result = run_dag(make_dag(dag_id, deferrable=False, durable=False), {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.try_number("train") == 2
    assert CREATES[dag_id] == 2  # the retry reached create: no record was read
    assert "Reconnecting to HappyRobot model" not in capfd.readouterr().out
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1


@pytest.mark.airflow_feature("durable after a deferral timed out")
@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0 hands a retry the failed try's deferral callback, which fails it again before execute "
    "(apache/airflow#56704, fixed in 3.1)",
)
@pytest.mark.parametrize("durable", [True, False], ids=["durable", "not_durable"])
def test_a_retry_after_a_deferral_that_timed_out_reconnects_only_when_durable(
    run_dag, sandbox, happyrobot_conn, capfd, durable
):
    """The first try's deferred wait times out, so the try fails and the task retries (a try that is not a
    resumption from deferral: Airflow has cleared the first try's XComs). ``durable=True``: the retry reads
    the record and reconnects, creating nothing. ``durable=False``: no record, so the retry goes through the
    create again, whose HappyRobot lookup (by the task instance's key) finds the first try's model: still one."""
    dag_id = f"deferral_timeout_{'durable' if durable else 'not_durable'}"
    DiesAfterCreate.sandbox_state = sandbox.sandbox.state
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = HOLD_SECONDS
    # cancel_on_kill=False: a timed-out wait would otherwise cancel the training the retry is to find going on.
    dag = make_dag(dag_id, FirstDeferralTimesOut, deferrable=True, durable=durable, cancel_on_kill=False)
    result = run_dag(dag, {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.try_number("train") == 2
    assert SEEN_BY_RETRY[dag_id] is None  # the retry began with the first try's XComs cleared
    assert CREATES[dag_id] == (1 if durable else 2)
    assert ("Reconnecting to HappyRobot model" in capfd.readouterr().out) is durable
    models = sandbox.sandbox.state.all("happyrobot")
    assert len(models) == 1
    assert result.xcom("train")["id"] == models[0]["id"]
    assert result.xcom("train")["status"] == "active"


def test_the_created_model_is_claimed_for_lookups(run_dag, sandbox, happyrobot_conn):
    from airflow.sdk import DAG, BaseOperator

    class Probe(BaseOperator):
        def execute(self, context: Any) -> Any:
            model_id = context["ti"].xcom_pull(task_ids="train")["id"]
            return [task_state.is_claimed("happyrobot", model_id), task_state.is_claimed("happyrobot", "x" * 24)]

    with DAG("resume_claim", schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        train = HappyRobotCreateModelOperator(
            task_id="train", name="claimed-bot", conn_id="hr", wait_for_completion=False, **MODEL
        )
        train >> Probe(task_id="probe")
    result = run_dag(dag, {"hr": happyrobot_conn})
    assert result.state == "success"
    assert result.xcom("probe") == [True, False]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_a_wait_rides_out_503s_longer_than_the_per_request_budget(run_dag, sandbox, happyrobot_conn, deferrable):
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    # Each read gives up after 2 attempts; the service answers 503 to the next 8 reads of the model.
    conn = happyrobot_conn | {"extra": {"retry_max_attempts": 2}}
    rule = FaultRule(kind="status", status=503, method="GET", path=r"^/api/v1/models/[^/]+$", count=8)
    sandbox.sandbox.faults.rules.append(rule)
    from airflow.sdk import DAG

    dag_id = f"ride_503_{'deferred' if deferrable else 'sync'}"
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        HappyRobotCreateModelOperator(
            task_id="train", name="patient-bot", poll_interval=0.1, conn_id="hr", deferrable=deferrable, **MODEL
        )
    result = run_dag(dag, {"hr": conn})
    assert rule.fired == 8  # the reads did fail beyond the per-request budget
    assert result.state == "success"
    assert result.try_number("train") == 1  # ridden out within the try, not by a task retry
    assert result.xcom("train")["status"] == "active"
