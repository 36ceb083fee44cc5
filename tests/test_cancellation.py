"""Cancel on kill: a create operator's remote work stops when its task is marked failed or times out, through
each service's declared cancel (cancellation.py), from the worker and from the trigger; never when the
task's wait only moved (a worker shutting down, a trigger handed to another triggerer)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures.oci_vision import vision_arguments

from airflow_provider_modelreg import cancellation
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.sandbox.faults import FaultRule

pytestmark = pytest.mark.integration

RUNNING = ("ACCEPTED", "IN_PROGRESS")  # an OCI work request still training
TI = SimpleNamespace(dag_id="cancel_dag", task_id="train", run_id="manual__1", map_index=-1)


def slow(sandbox: Any, service: str, seconds: float) -> None:
    """Resources of ``service`` take ``seconds`` to reach their final state (far longer than any wait here)."""
    sandbox.sandbox.state.lifecycle_seconds[service] = seconds


def one_task_dag(dag_id: str, operator_cls: type, **kwargs: Any) -> Any:
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        operator_cls(task_id="train", **kwargs)
    return dag


def ti_state_is(monkeypatch: pytest.MonkeyPatch, state: str | None) -> list[tuple[Any, ...]]:
    """What Airflow's API server answers for the task instance's state (recorded, to prove it was asked)."""
    asked: list[tuple[Any, ...]] = []

    def read(*args: Any) -> str | None:
        asked.append(args)
        return state

    async def aread(ti: Any) -> str | None:  # the trigger's question, through the triggerer's async channel
        return read(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)

    monkeypatch.setattr(cancellation, "task_instance_state", read)
    monkeypatch.setattr(cancellation, "_atask_instance_state", aread)
    return asked


def run_trigger_kill(trigger: LifecycleTrigger) -> None:
    """What Airflow 3.3's triggerer does when it cancels a trigger with the user-action message."""

    async def go() -> None:
        trigger.task_instance = TI  # the triggerer sets it before run()
        try:
            await trigger.on_kill()
        finally:
            await trigger.cleanup()

    asyncio.run(go())


# -- OCI AI Vision: the training work request is cancelled ---------------------------------------------
def vision_model(sandbox: Any) -> dict[str, Any]:
    (record,) = sandbox.sandbox.state.all("oci_vision")
    return record


def vision_views(oci_vision_hook: Any, model_id: str, work_request_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    from airflow_provider_modelreg.http import ApiRequest

    model = oci_vision_hook.request(ApiRequest("GET", f"/20220125/models/{model_id}")).data
    work_request = oci_vision_hook.request(ApiRequest("GET", f"/20220125/workRequests/{work_request_id}")).data
    return model, work_request


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_oci_vision_training_is_cancelled_when_the_wait_times_out(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook, deferrable
):
    slow(sandbox, "oci_vision", 600)  # trains far longer than the wait
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    dag = one_task_dag(
        f"cancel_vision_{deferrable}",
        OCIVisionCreateModelOperator,
        **vision_arguments(conn_id="oci_vision", poll_interval=0.2, wait_timeout=1.0, deferrable=deferrable),
    )
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.task_state("train") == "failed"
    record = vision_model(sandbox)
    model, work_request = vision_views(oci_vision_hook, record["id"], record["_work_request_id"])
    assert work_request["status"] == "CANCELED"
    assert model["lifecycleState"] == "FAILED" and "CANCELED" in model["lifecycleDetails"]


def test_oci_vision_training_is_cancelled_when_the_execution_timeout_runs_out(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook
):
    slow(sandbox, "oci_vision", 600)
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    dag = one_task_dag(
        "cancel_vision_execution_timeout",
        OCIVisionCreateModelOperator,
        execution_timeout=dt.timedelta(seconds=3),
        **vision_arguments(conn_id="oci_vision", poll_interval=0.2),
    )
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.task_state("train") == "failed"
    record = vision_model(sandbox)
    assert vision_views(oci_vision_hook, record["id"], record["_work_request_id"])[1]["status"] == "CANCELED"


def test_cancel_on_kill_false_leaves_the_training_running(run_dag, sandbox, oci_vision_conn, oci_vision_hook):
    slow(sandbox, "oci_vision", 600)
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    dag = one_task_dag(
        "cancel_vision_off",
        OCIVisionCreateModelOperator,
        cancel_on_kill=False,
        **vision_arguments(conn_id="oci_vision", poll_interval=0.2, wait_timeout=1.0),
    )
    assert run_dag(dag, {"oci_vision": oci_vision_conn}).task_state("train") == "failed"
    record = vision_model(sandbox)
    model, work_request = vision_views(oci_vision_hook, record["id"], record["_work_request_id"])
    assert model["lifecycleState"] == "CREATING" and work_request["status"] in RUNNING


# -- the trigger's on_kill: only a task marked failed cancels ---------------------------------------------
def created_vision_model(oci_vision_hook: Any) -> dict[str, Any]:
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    args = vision_arguments()
    fields = {
        "compartment_id": args["compartment_id"],
        "project_id": args["project_id"],
        "model_type": args["model_type"],
        "training_dataset": args["training_dataset"],
        "display_name": args["display_name"],
        "is_quick_mode": True,
    }
    created = oci_vision_hook.create_model(validate_request(CreateModelDetails, fields), retry_token="t" * 40)
    return {"model_id": created.model["id"], "work_request_id": created.work_request_id}


def vision_trigger(ref: dict[str, Any], **kwargs: Any) -> LifecycleTrigger:
    return LifecycleTrigger(
        spec="airflow_provider_modelreg.hooks.oci_vision:MODEL_LIFECYCLE",
        conn_id="oci_vision_test",
        ref=ref,
        poll_interval=0.2,
        end_time=time.time() + 600,
        **({"cancel_on_kill": True} | kwargs),
    )


@pytest.mark.parametrize(
    ("ti_state", "cancelled"),
    [
        ("failed", True),  # a user marked the deferred task failed
        ("deferred", False),  # the trigger moved to another triggerer (Airflow 3.3.2 still calls on_kill)
        ("success", False),  # a user marked it succeeded: the work is wanted
        (None, False),  # cleared: the next try reconnects to the resource
    ],
)
def test_trigger_on_kill_cancels_only_when_the_task_was_marked_failed(
    sandbox, oci_vision_hook, monkeypatch, ti_state, cancelled
):
    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)
    asked = ti_state_is(monkeypatch, ti_state)
    run_trigger_kill(vision_trigger(ref))
    assert asked == [(TI.dag_id, TI.task_id, TI.run_id, TI.map_index)]
    status = vision_views(oci_vision_hook, ref["model_id"], ref["work_request_id"])[1]["status"]
    assert status == "CANCELED" if cancelled else status in RUNNING


def test_a_trigger_without_cancel_on_kill_never_asks_nor_cancels(sandbox, oci_vision_hook, monkeypatch):
    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)
    asked = ti_state_is(monkeypatch, "failed")
    run_trigger_kill(vision_trigger(ref, cancel_on_kill=False))  # a sensor's trigger: the task owns nothing
    assert asked == []
    assert vision_views(oci_vision_hook, ref["model_id"], ref["work_request_id"])[1]["status"] in RUNNING


def test_not_knowing_why_the_task_stopped_cancels_nothing(sandbox, oci_vision_hook, monkeypatch):
    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)

    async def unreachable(*_args: Any) -> str:
        raise ConnectionError("API server down")

    monkeypatch.setattr(cancellation, "_atask_instance_state", unreachable)
    run_trigger_kill(vision_trigger(ref))
    assert vision_views(oci_vision_hook, ref["model_id"], ref["work_request_id"])[1]["status"] in RUNNING


def test_an_unanswered_question_cancels_nothing_and_says_so(sandbox, oci_vision_hook, monkeypatch, capfd):
    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)

    async def never(*_args: Any) -> str:
        await asyncio.sleep(3600)
        return "failed"

    monkeypatch.setattr(cancellation, "_atask_instance_state", never)
    monkeypatch.setenv("AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT", "1")  # leaves the question its floor of 1 s
    run_trigger_kill(vision_trigger(ref))
    assert vision_views(oci_vision_hook, ref["model_id"], ref["work_request_id"])[1]["status"] in RUNNING
    assert "did not say within" in "".join(capfd.readouterr())


def test_the_trigger_serialises_cancel_on_kill_and_restores_it():
    trigger = vision_trigger({"model_id": "m"})
    classpath, kwargs = trigger.serialize()
    assert kwargs["cancel_on_kill"] is True
    assert json.loads(json.dumps(kwargs)) == kwargs  # primitives only
    assert LifecycleTrigger(**kwargs).serialize() == (classpath, kwargs)


# -- idempotent, best effort -------------------------------------------------------------------------------
def test_a_second_cancel_sends_nothing(sandbox, oci_vision_hook, monkeypatch):
    from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE

    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)
    first = cancellation.cancel_sync(oci_vision_hook.client, MODEL_LIFECYCLE, ref, why="test")
    deletes = FaultRule(kind="status", status=500, method="DELETE", path="workRequests", count=1)
    sandbox.sandbox.faults.rules.append(deletes)
    second = cancellation.cancel_sync(oci_vision_hook.client, MODEL_LIFECYCLE, ref, why="test")
    assert (first, second) == ("cancelled", "not_running")
    assert deletes.fired == 0  # the second one read FAILED and sent no cancel


def test_a_cancel_that_fails_is_logged_and_never_raises(sandbox, oci_vision_hook, caplog):
    from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE

    slow(sandbox, "oci_vision", 600)
    ref = created_vision_model(oci_vision_hook)
    sandbox.sandbox.faults.rules.append(
        FaultRule(kind="status", status=500, method="DELETE", path="workRequests", count=None)
    )
    with caplog.at_level(logging.WARNING):
        outcome = cancellation.cancel_sync(oci_vision_hook.client, MODEL_LIFECYCLE, ref, why="test")
    assert outcome == "error"
    assert "Could not cancel OCI Vision model" in caplog.text and "500" in caplog.text


def test_a_failed_cancel_does_not_mask_the_timeout(run_dag, sandbox, oci_vision_conn, capfd):
    slow(sandbox, "oci_vision", 600)
    sandbox.sandbox.faults.rules.append(
        FaultRule(kind="status", status=500, method="DELETE", path="workRequests", count=None)
    )
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    dag = one_task_dag(
        "cancel_vision_fails",
        OCIVisionCreateModelOperator,
        **vision_arguments(conn_id="oci_vision", poll_interval=0.2, wait_timeout=1.0),
    )
    assert run_dag(dag, {"oci_vision": oci_vision_conn}).task_state("train") == "failed"
    out = capfd.readouterr().out
    assert "when the wait timed out" in out  # the task's own failure is what it reports


# -- MLflow: the run the task owns ends KILLED ------------------------------------------------------------
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_an_mlflow_run_left_open_ends_killed_when_its_wait_times_out(run_dag, mlflow_target, deferrable):
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

    experiment = mlflow_target.unique("cancel")
    dag = one_task_dag(
        f"cancel_mlflow_{deferrable}_{mlflow_target.flavour}",
        MlflowCreateRunOperator,
        conn_id="mlflow_cancel",
        experiment_name=experiment,
        metrics={"m": 1},
        close_run=False,
        wait_for_completion=True,
        poll_interval=0.2,
        wait_timeout=1.0,
        deferrable=deferrable,
    )
    before = int(time.time() * 1000)
    result = run_dag(dag, {"mlflow_cancel": mlflow_target.conn})
    assert result.task_state("train") == "failed"
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["status"] == "KILLED"
    assert int(run["info"]["end_time"]) >= before


# -- NeMo: the spec-analysis job is cancelled on the jobs API ----------------------------------------------
def test_nemo_spec_analysis_job_is_cancelled_and_the_wait_says_so(sandbox, nemo_hook, nemo_env, monkeypatch):
    from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE, SPEC_CANCELLED
    from airflow_provider_modelreg.http import ApiRequest
    from airflow_provider_modelreg.spec import Waiter

    slow(sandbox, "nemo", 600)
    nemo_hook.request(
        ApiRequest("POST", "/apis/models/v2/workspaces/default/models", json={"name": "llm", "fileset": "default/ckpt"})
    )
    ref = {"workspace": "default", "name": "llm"}
    ti_state_is(monkeypatch, "failed")
    trigger = LifecycleTrigger(
        spec=MODEL_SPEC_LIFECYCLE.key, conn_id=nemo_env, ref=ref, poll_interval=0.2, end_time=time.time() + 600,
        cancel_on_kill=True,
    )  # fmt: skip
    run_trigger_kill(trigger)

    def statuses() -> list[str]:
        jobs = nemo_hook.request(ApiRequest("GET", "/apis/jobs/v2/workspaces/default/jobs")).data["data"]
        return [job["status"] for job in jobs]

    # The jobs API answers "cancelling" until the job's task has stopped (NVIDIA's server does), then "cancelled".
    deadline = time.monotonic() + 30
    while statuses() == ["cancelling"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses() == ["cancelled"]
    # A wait on the entity (a sensor, a reconnecting retry) now fails at once, naming the cancelled job.
    waiter = Waiter(MODEL_SPEC_LIFECYCLE, ref)
    obs = waiter.evaluate(nemo_hook.request(MODEL_SPEC_LIFECYCLE.read(ref)).data)
    obs = waiter.watched(obs, nemo_hook.request(waiter.watch_request(obs)).data)
    assert (obs.outcome, obs.state) == ("failure", SPEC_CANCELLED)
    # ... and cancelling again sends nothing (the job is terminal).
    again = cancellation.cancel_sync(nemo_hook.client, MODEL_SPEC_LIFECYCLE, ref, why="again")
    assert again == "not_running"


# -- HappyRobot: no cancel exists, and the log says so -----------------------------------------------------
def test_happyrobot_has_no_cancel_and_the_log_says_so(run_dag, sandbox, happyrobot_conn, capfd):
    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

    slow(sandbox, "happyrobot", 600)
    dag = one_task_dag(
        "cancel_happyrobot",
        HappyRobotCreateModelOperator,
        use_case_id="uc-1",
        name="slow-bot",
        from_model_id="a" * 24,
        train_sample_ids=["s1"],
        test_sample_ids=["t1"],
        poll_interval=0.2,
        wait_timeout=1.0,
        conn_id="hr",
    )
    assert run_dag(dag, {"hr": happyrobot_conn}).task_state("train") == "failed"
    out = capfd.readouterr().out
    assert "keeps running" in out and "HappyRobot's API has no way to stop a model's training" in out
    from airflow_provider_modelreg.sandbox.happyrobot import view

    [model] = sandbox.sandbox.state.all("happyrobot")
    assert view(sandbox.sandbox.state, model)["status"] in ("pending", "training")


# -- secrets -----------------------------------------------------------------------------------------------
def test_cancel_logs_carry_no_secret(sandbox, nemo_conn, monkeypatch, caplog, capfd):
    """A NeMo platform with auth on: the token is sent with every cancel call, and reaches no log line,
    whether the cancel works or the service refuses it."""
    from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE, NemoModelsHook
    from airflow_provider_modelreg.http import ApiRequest

    token = "nemo-secret-token-4b1d"
    sandbox.sandbox.state.nemo_tokens = {token}
    slow(sandbox, "nemo", 600)
    monkeypatch.setenv("AIRFLOW_CONN_NEMO_SECRET", json.dumps(nemo_conn | {"password": token}))
    hook = NemoModelsHook(conn_id="nemo_secret")
    for name in ("one", "two"):
        body = {"name": f"llm-{name}", "fileset": "default/ckpt"}
        hook.request(ApiRequest("POST", "/apis/models/v2/workspaces/default/models", json=body))
    ti_state_is(monkeypatch, "failed")
    with caplog.at_level(logging.DEBUG):
        trigger = LifecycleTrigger(
            spec=MODEL_SPEC_LIFECYCLE.key, conn_id="nemo_secret", ref={"workspace": "default", "name": "llm-one"},
            poll_interval=0.2, end_time=time.time() + 600, cancel_on_kill=True,
        )  # fmt: skip
        run_trigger_kill(trigger)
        sandbox.sandbox.faults.rules.append(
            FaultRule(kind="status", status=500, method="POST", path="cancel", count=None)
        )
        outcome = cancellation.cancel_sync(
            hook.client, MODEL_SPEC_LIFECYCLE, {"workspace": "default", "name": "llm-two"}, why="test"
        )
    assert outcome == "error"
    logged = caplog.text + "".join(capfd.readouterr())  # the trigger logs through Airflow's structlog
    assert "spec-analysis job was cancelled" in logged and "Could not cancel" in logged
    assert token not in logged
