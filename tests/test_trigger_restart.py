"""A triggerer restart and a twice-delivered event change nothing, for every service's lifecycle.

* A LifecycleTrigger stopped mid-wait and rebuilt the way a triggerer rebuilds it (the trigger row's
  encrypted kwargs, decrypted and decoded, passed to the class found by its classpath) resumes the same
  wait, keeps its deadline, and yields the event an uninterrupted trigger yields (success and failure).
* An event delivered twice to an operator's or sensor's ``execute_complete`` only reads: the sandbox sees
  no second create, update or delete, and both deliveries return the same XCom value.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures.oci_vision import VISION_FAST_RETRY, vision_arguments

from airflow_provider_modelreg.http import RetryPolicy
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
LIFECYCLE_SECONDS = 1.5
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


# -- helpers ---------------------------------------------------------------------------------------------------
async def first_event(trigger: LifecycleTrigger) -> dict[str, Any]:
    try:
        async for event in trigger.run():
            return dict(event.payload)
    finally:
        await trigger.cleanup()
    raise AssertionError("the trigger ended without an event")


def stop_mid_wait(trigger: LifecycleTrigger, reads: int = 2) -> None:
    """Run the trigger until it has read its resource ``reads`` times, then cancel it as a stopping triggerer
    does; it must not have finished."""
    from airflow_provider_modelreg.spec import Waiter

    evaluate = Waiter.evaluate
    seen = 0

    def counted(self: Waiter, data: Any) -> Any:
        nonlocal seen
        seen += 1
        return evaluate(self, data)

    async def run() -> None:
        task = asyncio.ensure_future(first_event(trigger))
        deadline = time.monotonic() + 60
        while seen < reads and not task.done():  # polled for the condition, under a deadline
            assert time.monotonic() < deadline, f"the trigger read its resource {seen} times in 60 s"
            await asyncio.sleep(0.02)
        assert not task.done(), "the resource finished before the restart: nothing was resumed"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    Waiter.evaluate = counted  # type: ignore[method-assign]
    try:
        asyncio.run(run())
    finally:
        Waiter.evaluate = evaluate  # type: ignore[method-assign]


def rebuild_as_triggerer(trigger: LifecycleTrigger) -> LifecycleTrigger:
    """What a triggerer does with a stored trigger: encrypted kwargs in the row, decrypted, decoded, rebuilt."""
    from airflow.models.trigger import Trigger

    try:
        from airflow.sdk.module_loading import import_string
        from airflow.serialization.decoders import smart_decode_trigger_kwargs
    except ImportError:  # Airflow 3.0 and 3.1: _decrypt_kwargs already decodes them
        from airflow.utils.module_loading import import_string

        def smart_decode_trigger_kwargs(value: Any) -> Any:
            return value

    row = Trigger.from_object(trigger)
    kwargs = {k: smart_decode_trigger_kwargs(v) for k, v in Trigger._decrypt_kwargs(row.encrypted_kwargs).items()}
    rebuilt = import_string(row.classpath)(**kwargs)
    assert isinstance(rebuilt, LifecycleTrigger)
    return rebuilt


def context(task_id: str, run_id: str = "manual__restart") -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="restart_dag",
        task_id=task_id,
        run_id=run_id,
        map_index=-1,
        try_number=1,
        xcom_push=lambda key, value: None,
        xcom_pull=lambda *a, **k: None,
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": SimpleNamespace(run_id=run_id, run_after=datetime.now(timezone.utc)),
    }


@dataclass
class RequestCount:
    """Requests reaching the sandbox, counted by zero-delay latency rules (one per method)."""

    rules: dict[str, FaultRule]

    def __getitem__(self, method: str) -> int:
        return self.rules[method].fired

    @property
    def writes(self) -> int:
        return sum(self[m] for m in WRITE_METHODS)


@pytest.fixture
def requests_seen(sandbox: Any) -> Callable[[], RequestCount]:
    def start() -> RequestCount:
        rules = {m: FaultRule(kind="latency", delay=0.0, method=m, count=None) for m in ("GET", *WRITE_METHODS)}
        sandbox.sandbox.faults.rules[:] = list(rules.values())
        return RequestCount(rules)

    return start


@pytest.fixture
def slow_lifecycles(sandbox: Any) -> Any:
    sandbox.sandbox.state.lifecycle_seconds["*"] = LIFECYCLE_SECONDS
    return sandbox


def resource_count(sandbox: Any) -> int:
    with sandbox.sandbox.state.lock:
        return sum(len(v) for v in sandbox.sandbox.state.resources.values())


# -- one resource per lifecycle spec ------------------------------------------------------------------------
@dataclass
class Waitable:
    """A resource in progress, the spec that waits for it, and what finishes it (when time alone does not)."""

    spec: str
    conn_id: str
    ref: dict[str, Any]
    success_state: str
    finish: Callable[[], None] = lambda: None


@pytest.fixture
def connections(
    monkeypatch: pytest.MonkeyPatch,
    happyrobot_conn: dict[str, Any],
    oci_vision_conn: dict[str, Any],
    aidp_conn: dict[str, Any],
    nemo_conn: dict[str, Any],
) -> dict[str, str]:
    conns = {"hr": happyrobot_conn, "vision": oci_vision_conn, "aidp": aidp_conn, "nemo": nemo_conn}
    for conn_id, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return {name: name for name in conns}


def make_happyrobot(name: str) -> Waitable:
    from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
    from airflow_provider_modelreg.models.happyrobot import CreateModelRequest

    request = CreateModelRequest(
        use_case_id="uc", name=name, from_model_id="d" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )
    model = HappyRobotHook(conn_id="hr", retry=FAST).create_model(request)
    return Waitable(MODEL_LIFECYCLE.key, "hr", {"model_id": model["id"]}, "active")


def make_oci_vision(name: str) -> Waitable:
    from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE, OCIVisionHook
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    created = OCIVisionHook(conn_id="vision", retry=VISION_FAST_RETRY).create_model(
        CreateModelDetails.model_validate(vision_arguments(display_name=name))
    )
    ref = {"model_id": created.model["id"], "work_request_id": created.work_request_id}
    return Waitable(MODEL_LIFECYCLE.key, "vision", ref, "ACTIVE")


def make_mlflow_model_version(name: str) -> Waitable:
    from airflow_provider_modelreg.hooks.mlflow import MODEL_VERSION_LIFECYCLE, mlflow_hook
    from airflow_provider_modelreg.models.mlflow import CreateModelVersionRequest, CreateRegisteredModelRequest

    hook = mlflow_hook("aidp", retry=FAST)
    hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    version = hook.create_model_version(CreateModelVersionRequest(name=name, source=f"oci://models/{name}"))
    ref = {"api": hook.registry_api, "name": name, "version": str(version["version"])}
    return Waitable(MODEL_VERSION_LIFECYCLE.key, "aidp", ref, "READY")


def make_mlflow_run(name: str) -> Waitable:
    from airflow_provider_modelreg.hooks.mlflow import RUN_LIFECYCLE, mlflow_hook
    from airflow_provider_modelreg.models.mlflow import CreateRunRequest

    hook = mlflow_hook("aidp", retry=FAST)
    experiment = hook.get_or_create_experiment(f"exp-{name}")
    run = hook.create_run(CreateRunRequest(experiment_id=str(experiment["experiment_id"]), run_name=name))
    run_id = run["info"]["run_id"]
    # A run ends when its owner closes it, not with time: closed after the restart.
    return Waitable(
        RUN_LIFECYCLE.key,
        "aidp",
        {"api": hook.tracking_api, "run_id": run_id},
        "FINISHED",
        finish=lambda: hook.set_run_status(run_id, "FINISHED"),
    )


def make_nemo(name: str) -> Waitable:
    from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE, SPEC_READY, NemoModelsHook
    from airflow_provider_modelreg.models.nemo import CreateModelEntity

    hook = NemoModelsHook(conn_id="nemo", retry=FAST)
    entity = hook.create_model("default", CreateModelEntity(name=name, fileset="default/checkpoint"))
    return Waitable(MODEL_SPEC_LIFECYCLE.key, "nemo", {"workspace": "default", "name": entity["name"]}, SPEC_READY)


MAKERS = {
    "happyrobot": make_happyrobot,
    "oci_vision": make_oci_vision,
    "mlflow_model_version": make_mlflow_model_version,
    "mlflow_run": make_mlflow_run,
    "nemo": make_nemo,
}


def trigger_for(waitable: Waitable, end_time: float | None = None) -> LifecycleTrigger:
    return LifecycleTrigger(
        spec=waitable.spec,
        conn_id=waitable.conn_id,
        ref=waitable.ref,
        poll_interval=0.1,
        end_time=end_time if end_time is not None else time.time() + 60,
    )


# -- a triggerer restart ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("service", sorted(MAKERS))
def test_a_trigger_rebuilt_after_a_restart_resumes_and_yields_the_same_event(
    service, slow_lifecycles, connections, requests_seen
):
    waitable = MAKERS[service](f"restart-{service.replace('_', '-')}")
    original = trigger_for(waitable)
    counted = requests_seen()
    stop_mid_wait(original)
    assert counted["GET"] >= 1, "the first trigger polled before it was stopped"
    waitable.finish()

    rebuilt = rebuild_as_triggerer(original)
    assert rebuilt.serialize() == original.serialize()  # same wait, same absolute deadline
    event = asyncio.run(first_event(rebuilt))
    assert event == {"status": "success", "state": waitable.success_state, "ref": waitable.ref}
    # An uninterrupted trigger on the same resource ends with the same event.
    assert asyncio.run(first_event(trigger_for(waitable))) == event
    assert counted.writes == (1 if service == "mlflow_run" else 0)  # only the run's own close wrote


@pytest.mark.parametrize(
    ("service", "outcome_service"),
    [("happyrobot", "happyrobot"), ("oci_vision", "oci_vision"), ("mlflow_model_version", "mlflow")],
)
def test_a_restarted_trigger_reports_the_same_failure(service, outcome_service, slow_lifecycles, connections):
    slow_lifecycles.sandbox.state.outcome_rules.append(
        OutcomeRule(service=outcome_service, match="doomed", reason="labels are inconsistent")
    )
    waitable = MAKERS[service](f"doomed-{service.replace('_', '-')}")
    original = trigger_for(waitable)
    stop_mid_wait(original)
    event = asyncio.run(first_event(rebuild_as_triggerer(original)))
    assert event["status"] == "failure" and "labels are inconsistent" in event["message"]
    assert asyncio.run(first_event(trigger_for(waitable))) == event


def test_a_restart_keeps_the_deadline(slow_lifecycles, connections):
    """The deadline is absolute: a trigger rebuilt after it passed ends with a timeout, not a fresh wait."""
    slow_lifecycles.sandbox.state.lifecycle_seconds["happyrobot"] = 300
    waitable = make_happyrobot("restart-deadline")
    original = trigger_for(waitable, end_time=time.time() + 3)  # room for a first read on a loaded machine
    stop_mid_wait(original, reads=1)
    while time.time() <= original.end_time:  # the triggerer is down until past the deadline
        time.sleep(0.05)
    event = asyncio.run(first_event(rebuild_as_triggerer(original)))
    assert event["status"] == "timeout" and f"model_id={waitable.ref['model_id']}" in event["message"]


# -- an event delivered twice -----------------------------------------------------------------------------------
def operator_for(service: str, name: str) -> Any:
    common = {"task_id": f"create_{service}", "deferrable": True, "poll_interval": 0.1}
    if service == "happyrobot":
        from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

        return HappyRobotCreateModelOperator(
            conn_id="hr",
            use_case_id="uc",
            name=name,
            from_model_id="d" * 24,
            train_sample_ids=["s"],
            test_sample_ids=[],
            **common,
        )
    if service == "oci_vision":
        from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

        return OCIVisionCreateModelOperator(conn_id="vision", **(vision_arguments(display_name=name) | common))
    if service == "mlflow_model_version":
        from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator

        return MlflowCreateModelVersionOperator(conn_id="aidp", name=name, source=f"oci://models/{name}", **common)
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

    return NemoCreateModelOperator(conn_id="nemo", name=name, fileset="default/checkpoint", **common)


def deferred_event(task: Any, ctx: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Run ``execute`` until it defers, then the trigger it deferred to: (event, method to resume with)."""
    from airflow_provider_modelreg.version_compat import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(ctx)
    return asyncio.run(first_event(rebuild_as_triggerer(deferred.value.trigger))), deferred.value.method_name


def deliver_twice(build: Callable[[], Any], method: str, ctx: dict[str, Any], event: dict[str, Any]) -> list[Any]:
    """Each delivery resumes on a fresh operator object, as a new worker would."""
    return [getattr(build(), method)(ctx, event=event) for _ in range(2)]


@pytest.mark.parametrize("service", ["happyrobot", "oci_vision", "mlflow_model_version", "nemo"])
def test_an_event_delivered_twice_to_an_operator_only_reads(service, slow_lifecycles, connections, requests_seen):
    name = f"twice-{service.replace('_', '-')}"
    ctx = context(f"create_{service}")
    event, method = deferred_event(operator_for(service, name), ctx)
    assert event["status"] == "success"
    before = resource_count(slow_lifecycles)
    counted = requests_seen()

    first, second = deliver_twice(lambda: operator_for(service, name), method, ctx, event)
    assert first == second
    assert counted.writes == 0
    assert counted["GET"] == 2  # one read of the resource per delivery
    assert resource_count(slow_lifecycles) == before


def test_an_event_delivered_twice_to_the_run_operator_only_reads(sandbox, connections, requests_seen):
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

    def build() -> Any:
        return MlflowCreateRunOperator(task_id="log", conn_id="aidp", experiment_name="twice", metrics={"acc": 0.9})

    ctx = context("log")
    out = build().execute(ctx)  # the run is closed FINISHED: nothing to defer, so the trigger is run by hand
    event = asyncio.run(
        first_event(
            LifecycleTrigger(
                spec="airflow_provider_modelreg.hooks.mlflow:RUN_LIFECYCLE",
                conn_id="aidp",
                ref={"api": build().hook.tracking_api, "run_id": out["run_id"]},
                poll_interval=0.1,
                end_time=time.time() + 30,
            )
        )
    )
    before = resource_count(sandbox)
    counted = requests_seen()
    first, second = deliver_twice(build, "execute_complete", ctx, event)
    assert first == second and first["run_id"] == out["run_id"] and first["status"] == "FINISHED"
    assert counted.writes == 0 and resource_count(sandbox) == before


def sensor_for(service: str, waitable: Waitable) -> Any:
    common = {"task_id": f"wait_{service}", "deferrable": True, "poke_interval": 0.1, "timeout": 60}
    ref = waitable.ref
    if service == "happyrobot":
        from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

        return HappyRobotModelSensor(conn_id="hr", model_id=ref["model_id"], **common)
    if service == "oci_vision":
        from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

        return OCIVisionModelSensor(
            conn_id="vision", model_id=ref["model_id"], work_request_id=ref["work_request_id"], **common
        )
    if service == "mlflow_model_version":
        from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor

        return MlflowModelVersionSensor(conn_id="aidp", name=ref["name"], version=ref["version"], **common)
    if service == "mlflow_run":
        from airflow_provider_modelreg.sensors.mlflow import MlflowRunSensor

        return MlflowRunSensor(conn_id="aidp", run_id=ref["run_id"], **common)
    from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor

    return NemoModelSpecSensor(conn_id="nemo", name=ref["name"], workspace=ref["workspace"], **common)


@pytest.fixture
def finish_later() -> Iterator[Callable[[Callable[[], None], float], None]]:
    """Run ``finish`` after ``delay`` seconds in the background (a run's owner closing it while we wait)."""
    import threading

    timers: list[threading.Timer] = []

    def schedule(finish: Callable[[], None], delay: float) -> None:
        timers.append(threading.Timer(delay, finish))
        timers[-1].start()

    yield schedule
    for timer in timers:
        timer.join()


@pytest.mark.parametrize("service", sorted(MAKERS))
def test_an_event_delivered_twice_to_a_sensor_only_reads(
    service, slow_lifecycles, connections, requests_seen, finish_later
):
    waitable = MAKERS[service](f"sensed-{service.replace('_', '-')}")
    finish_later(waitable.finish, 0.5)
    ctx = context(f"wait_{service}")
    event, method = deferred_event(sensor_for(service, waitable), ctx)
    assert event == {"status": "success", "state": waitable.success_state, "ref": waitable.ref}
    before = resource_count(slow_lifecycles)
    counted = requests_seen()

    first, second = deliver_twice(lambda: sensor_for(service, waitable), method, ctx, event)
    assert first == second
    assert counted.writes == 0 and counted["GET"] == 2  # one read of the resource per delivery
    assert resource_count(slow_lifecycles) == before


def test_a_failure_event_delivered_twice_fails_twice_without_a_request(sandbox, connections, requests_seen):
    from airflow_provider_modelreg.version_compat import AirflowFailException

    counted = requests_seen()
    event = {"status": "failure", "state": "failed", "message": "HappyRobot model model_id=m ended failed: bad"}
    for _ in range(2):
        with pytest.raises(AirflowFailException, match="ended failed: bad"):
            operator_for("happyrobot", "x").execute_complete(context("create_happyrobot"), event=event)
    assert counted["GET"] == 0 and counted.writes == 0
