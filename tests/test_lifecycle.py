"""The one waiting mechanism: spec evaluation, the sync wait and the deferrable trigger agree."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
from airflow_provider_modelreg.lifecycle import (
    LifecycleFailed,
    LifecycleTimeout,
    LifecycleTrigger,
    wait_sync,
)
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS


def is_primitive(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_primitive(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_primitive(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


async def until(condition: Any, timeout: float = 30.0) -> None:
    """Wait for ``condition()`` to hold, checking every few ms, for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {condition}")
        await asyncio.sleep(0.01)


def any_done(tasks: list[asyncio.Future[Any]]) -> bool:
    """A wait that ended early (an error) ends the waiting for a condition: its result tells what went wrong."""
    return any(task.done() for task in tasks)


def count_reads(sandbox: Any, path: str = "/models") -> Any:
    """A sandbox rule that only counts the reads of ``path`` reaching it (``.fired``); it changes nothing."""
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    rule = FaultRule(kind="latency", delay=0.0, method="GET", path=path, count=None)
    sandbox.sandbox.faults.rules.append(rule)
    return rule


def hold_models(sandbox: Any, held: bool) -> None:
    """Keep HappyRobot models in progress (an hour-long training), or let them end at their next read: the
    sandbox derives a model's state from its age at each read, so a test sees waits mid-wait however slowly
    a loaded machine runs them."""
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = 3600.0 if held else 0.05


def make_trigger(model_id: str, end_time: float = 1e12) -> LifecycleTrigger:
    return LifecycleTrigger(
        spec=MODEL_LIFECYCLE.key, conn_id="hr", ref={"model_id": model_id}, poll_interval=0.1, end_time=end_time
    )


def test_trigger_serialises_to_primitives_without_secrets():
    classpath, kwargs = make_trigger("m1").serialize()
    assert classpath == "airflow_provider_modelreg.lifecycle.LifecycleTrigger"
    assert is_primitive(kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert "sandbox-happyrobot-key" not in json.dumps(kwargs)


async def first_event(trigger: LifecycleTrigger) -> dict[str, Any]:
    try:
        async for event in trigger.run():
            return event.payload
    finally:
        await trigger.cleanup()
    raise AssertionError("the trigger ended without an event")


@pytest.fixture
def model_id(monkeypatch, happyrobot_conn) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    request = CreateModelRequest(
        use_case_id="u", name="m", from_model_id="d" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )
    return HappyRobotHook(conn_id="hr").create_model(request)["id"]


@pytest.mark.integration
def test_trigger_and_sync_wait_reach_the_same_end(model_id):
    event = asyncio.run(first_event(make_trigger(model_id)))
    assert event == {"status": "success", "state": "active", "ref": {"model_id": model_id}}
    resource = wait_sync(
        HappyRobotHook(conn_id="hr").client, MODEL_LIFECYCLE, {"model_id": model_id}, poll_interval=0.1, timeout=30
    )
    assert resource["status"] == event["state"]


@pytest.mark.integration
def test_a_trigger_rebuilt_from_its_serialised_form_resumes_the_same_wait(model_id, sandbox):
    original = make_trigger(model_id)
    hold_models(sandbox, True)
    reads = count_reads(sandbox)

    async def stop_mid_wait() -> None:
        task = asyncio.ensure_future(first_event(original))
        await until(lambda: reads.fired >= 1 or task.done())  # polling, model still in progress
        task.cancel()  # a triggerer restart
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_mid_wait())
    hold_models(sandbox, False)
    _classpath, kwargs = original.serialize()
    rebuilt = LifecycleTrigger(**kwargs)
    assert asyncio.run(first_event(rebuilt)) == {"status": "success", "state": "active", "ref": {"model_id": model_id}}


@pytest.mark.integration
def test_trigger_reports_failure_with_the_reason_and_sync_wait_raises_it(sandbox, monkeypatch, happyrobot_conn):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="happyrobot", match="x", reason="bad labels"))
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    request = CreateModelRequest(
        use_case_id="u", name="x", from_model_id="d" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )
    model_id = HappyRobotHook(conn_id="hr").create_model(request)["id"]
    event = asyncio.run(first_event(make_trigger(model_id)))
    assert event["status"] == "failure" and event["message"].endswith("ended failed: bad labels")
    with pytest.raises(LifecycleFailed, match="ended failed: bad labels"):
        wait_sync(
            HappyRobotHook(conn_id="hr").client, MODEL_LIFECYCLE, {"model_id": model_id}, poll_interval=0.1, timeout=30
        )


@pytest.mark.integration
def test_trigger_ends_at_its_deadline_and_sync_wait_at_its_timeout(sandbox, model_id):
    import time

    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = 300
    event = asyncio.run(first_event(make_trigger(model_id, end_time=time.time() + 0.3)))
    assert event["status"] == "timeout" and f"model_id={model_id}" in event["message"]
    with pytest.raises(LifecycleTimeout, match=f"model_id={model_id} was still"):
        wait_sync(
            HappyRobotHook(conn_id="hr").client, MODEL_LIFECYCLE, {"model_id": model_id}, poll_interval=0.1, timeout=0.3
        )


@pytest.mark.integration
def test_one_client_serves_the_whole_wait_and_cleanup_closes_it(model_id):
    trigger = make_trigger(model_id)

    async def run() -> tuple[Any, bool]:
        async for _event in trigger.run():
            client = trigger._client
            assert client is not None
            pool = client.aclient
            await trigger.cleanup()
            return trigger._client, pool.is_closed
        return None, False

    client_after, closed = asyncio.run(run())
    assert client_after is None and closed


@pytest.mark.integration
@pytest.mark.parametrize(("extras", "pool_size"), [({}, 10), ({"max_connections": 3}, 3)])
def test_many_waits_on_one_connection_share_one_small_pool(
    model_id, sandbox, monkeypatch, happyrobot_conn, extras, pool_size
):
    """A triggerer runs thousands of waits in one loop: they share connections, not one pool each."""
    from airflow_provider_modelreg.http import SharedAsyncClient

    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn | {"extra": json.dumps(extras)}))
    hold_models(sandbox, True)
    reads = count_reads(sandbox)
    waits = 40

    async def run() -> tuple[list[dict[str, Any]], int, int, int]:
        loop = asyncio.get_running_loop()
        connects = 0
        create_connection = loop.create_connection

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal connects
            connects += 1
            return await create_connection(*args, **kwargs)

        loop.create_connection = counting  # type: ignore[method-assign]
        triggers = [make_trigger(model_id) for _ in range(waits)]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers]
        # Every wait holds its client and a poll has gone out; the model stays in progress meanwhile.
        await until(lambda: (all(t._client is not None for t in triggers) and reads.fired >= 1) or any_done(tasks))
        open_while_waiting = SharedAsyncClient.open_count()
        hold_models(sandbox, False)
        events = await asyncio.gather(*tasks)
        return events, connects, open_while_waiting, SharedAsyncClient.open_count()

    events, connects, open_while_waiting, open_after = asyncio.run(run())
    assert [e["status"] for e in events] == ["success"] * waits
    assert open_while_waiting == 1 and open_after == 0
    assert 1 <= connects <= pool_size


@pytest.mark.integration
def test_waits_of_one_connection_share_one_client_and_starting_together_fetch_the_connection_once(
    model_id, sandbox, monkeypatch
):
    """10,000 waits of one connection hold one client between them, not one each, however they start."""
    hold_models(sandbox, True)
    reads = count_reads(sandbox)
    fetches = [0]
    original = HappyRobotHook.aclient_for.__func__  # type: ignore[attr-defined]

    async def counted(cls: type[HappyRobotHook], conn_id: str, retry: Any = None) -> Any:
        fetches[0] += 1
        return await original(cls, conn_id, retry)

    monkeypatch.setattr(HappyRobotHook, "aclient_for", classmethod(counted))
    waits = 20

    async def run() -> tuple[list[dict[str, Any]], int, bool]:
        triggers = [make_trigger(model_id) for _ in range(waits)]
        tasks = [asyncio.ensure_future(first_event(t)) for t in triggers[: waits // 2]]
        # The first half has its client; the second half then fetches the connection again.
        await until(lambda: all(t._client is not None for t in triggers[: waits // 2]) or any_done(tasks))
        read_before = reads.fired
        tasks += [asyncio.ensure_future(first_event(t)) for t in triggers[waits // 2 :]]
        # Every wait holds its client and a poll followed; the model stays in progress meanwhile.
        await until(
            lambda: (all(t._client is not None for t in triggers) and reads.fired > read_before) or any_done(tasks)
        )
        clients = {id(t._client) for t in triggers}
        pool = triggers[0]._client.aclient if triggers[0]._client is not None else None
        hold_models(sandbox, False)
        events = await asyncio.gather(*tasks)
        return events, len(clients), pool is not None and pool.is_closed

    events, distinct_clients, closed_after = asyncio.run(run())
    assert [e["status"] for e in events] == ["success"] * waits
    assert distinct_clients == 1
    assert fetches[0] == 2  # the waits starting together shared one connection fetch
    assert closed_after  # the last wait's cleanup gave the pool back


# A cold triggerer's first waits: the child has loaded what a triggerer has (Airflow, the trigger class and
# its hook) and fetched a connection once; from then on its event loop must open no file, import no module
# and load no CA bundle. Each of those is tens of ms on a quiet machine (a triggerer taking over a hundred
# waits from a dead one stalled past Airflow's 0.2 s warning on a loaded one).
COLD_TRIGGERER = r"""
import asyncio, json, ssl, sys, threading, time
import airflow.sdk
from airflow_provider_modelreg.version_compat import aget_connection
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.spec import resolve_spec

waits = json.loads(sys.argv[1])
for spec, _conn_id, _ref in waits:
    resolve_spec(spec).hook_class()  # the hook module, imported as the first trigger's deserialisation would
in_loop = []
loop_thread = None

def audit(event, args):
    if loop_thread is threading.current_thread() and event in ("open", "import"):
        in_loop.append(f"{event} {args[0]}")

load_verify_locations = ssl.SSLContext.load_verify_locations
def recorded_load(self, *args, **kwargs):
    if loop_thread is threading.current_thread():
        in_loop.append(f"load_verify_locations {args or kwargs}")
    return load_verify_locations(self, *args, **kwargs)
ssl.SSLContext.load_verify_locations = recorded_load

async def wait(spec, conn_id, ref):
    trigger = LifecycleTrigger(spec=spec, conn_id=conn_id, ref=ref, poll_interval=0.2, end_time=time.time() + 60)
    async for event in trigger.run():
        return event.payload["status"]

async def main():
    global loop_thread
    for conn_id in {conn_id for _spec, conn_id, _ref in waits}:
        await aget_connection(conn_id)  # Airflow's own first fetch loads its modules
    loop_thread = threading.current_thread()
    statuses = await asyncio.gather(*(wait(*w) for w in waits))
    loop_thread = None
    print(json.dumps({"statuses": statuses, "in_loop": in_loop}))

sys.addaudithook(audit)
asyncio.run(main())
"""


def test_a_cold_triggerers_first_waits_open_no_file_and_import_nothing_in_its_event_loop(
    sandbox, monkeypatch, oci_vision_conn, happyrobot_conn
):
    import subprocess
    import sys

    from fixtures.oci_vision import vision_arguments

    from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE as VISION_LIFECYCLE
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    monkeypatch.setenv("AIRFLOW_CONN_COLD_OCI", json.dumps(oci_vision_conn))  # the child inherits both
    monkeypatch.setenv("AIRFLOW_CONN_COLD_HR", json.dumps(happyrobot_conn))
    sandbox.sandbox.state.lifecycle_seconds["*"] = 4.0  # the child polls each a few times
    vision = OCIVisionHook("cold_oci")
    waits: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(3):
        created = vision.create_model(CreateModelDetails(**vision_arguments(display_name=f"cold-{i}")))
        ref = {"model_id": created.model["id"], "work_request_id": created.work_request_id}
        waits.append((VISION_LIFECYCLE.key, "cold_oci", ref))
        model = HappyRobotHook("cold_hr").create_model(
            CreateModelRequest(
                use_case_id="uc-cold",
                name=f"cold-{i}",
                from_model_id="c" * 24,
                train_sample_ids=["s1"],
                test_sample_ids=[],
            )
        )
        waits.append((MODEL_LIFECYCLE.key, "cold_hr", {"model_id": model["id"]}))

    child = subprocess.run(
        [sys.executable, "-c", COLD_TRIGGERER, json.dumps(waits)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["statuses"] == ["success"] * len(waits)
    assert outcome["in_loop"] == []


# -- two connections on one host with one key: each wait is its own connection's ----------------------
def _vision_model_sensor(conn_id: str, model_id: str, deferrable: bool) -> Any:
    from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

    return OCIVisionModelSensor(
        task_id="vision", conn_id=conn_id, model_id=model_id, deferrable=deferrable, poke_interval=0.1, timeout=60
    )


def _model_version_sensor(conn_id: str, name: str, version: str, deferrable: bool) -> Any:
    from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor

    return MlflowModelVersionSensor(
        task_id="version",
        conn_id=conn_id,
        name=name,
        version=version,
        deferrable=deferrable,
        poke_interval=0.1,
        timeout=60,
    )


def _trigger_of(sensor: Any) -> LifecycleTrigger:
    from airflow_provider_modelreg.version_compat import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    return deferred.value.trigger


@pytest.mark.integration
@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's dag.test() prints each task log line twice (its stdout handler and stderr): counts of log lines do not hold",
)
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_waits_of_two_services_on_one_host_and_key_each_log_their_service_and_keep_their_retries(
    sandbox, monkeypatch, oci_conn_fields, caplog, capfd, deferrable
):
    """A tenancy's ``oci`` and ``oci_aidp`` connections on one host with one key are still two services:
    each wait's lines name its own service and it retries as its own connection says (issue 27.1)."""
    from fixtures.oci_vision import vision_arguments

    from airflow_provider_modelreg.hooks.mlflow import OCIDataPlatformMlflowHook
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.mlflow import CreateModelVersionRequest, CreateRegisteredModelRequest
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    # Vision: no retry (one attempt); AI Data Platform: three attempts. Other rates too (a loopback host
    # has no budget unless the connection gives one).
    vision_extra = oci_conn_fields | {"retry_max_attempts": 1, "requests_per_second": 500}
    aidp_extra = oci_conn_fields | {
        "ai_data_platform_id": "ocid1.aidataplatform.oc1.iad.sandbox",
        "workspace_key": "ws",
        "retry_max_attempts": 3,
        "retry_max_seconds": 60,
        "requests_per_second": 400,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHARED_VISION", json.dumps({"conn_type": "oci", "host": sandbox.url, "extra": vision_extra})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHARED_AIDP", json.dumps({"conn_type": "oci_aidp", "host": sandbox.url, "extra": aidp_extra})
    )
    vision_hook, aidp_hook = OCIVisionHook(conn_id="shared_vision"), OCIDataPlatformMlflowHook(conn_id="shared_aidp")
    assert vision_hook.client.pool_key() == aidp_hook.client.pool_key()  # one host, one key: the issue's setting

    sandbox.sandbox.state.lifecycle_seconds["*"] = 3.0  # both still waiting while the faults fire
    model_id = vision_hook.create_model(validate_request(CreateModelDetails, vision_arguments())).model["id"]
    aidp_hook.ensure_registered_model(CreateRegisteredModelRequest(name="shared-host"))
    version = aidp_hook.create_model_version(CreateModelVersionRequest(name="shared-host", source="s3://b/m"))
    vision = _vision_model_sensor("shared_vision", model_id, deferrable)
    aidp = _model_version_sensor("shared_aidp", "shared-host", str(version["version"]), deferrable)
    triggers = [_trigger_of(vision), _trigger_of(aidp)] if deferrable else []

    # Each service's read answers 503 twice: AI Data Platform's client rides it out in its own retries;
    # Vision's (one attempt) gives up on each and the wait reads again at its next check.
    faults = [
        FaultRule(kind="status", status=503, method="GET", path=f"/20220125/models/{model_id}", count=2),
        FaultRule(kind="status", status=503, method="GET", path="/model-versions/get", count=2),
    ]
    sandbox.sandbox.faults.rules.extend(faults)
    rates: list[float | None] = []
    if deferrable:

        async def run_in_one_triggerer() -> list[dict[str, Any]]:
            waits = [asyncio.ensure_future(first_event(t)) for t in triggers]
            await until(lambda: all(t._client is not None for t in triggers) or any(w.done() for w in waits))
            rates.extend(t._client.budget.cap if t._client and t._client.budget else None for t in triggers)
            return await asyncio.gather(*waits)

        events = asyncio.run(run_in_one_triggerer())
        assert [e["status"] for e in events] == ["success", "success"]
        assert rates == [500.0, 400.0]  # each wait spends its own connection's request budget
    else:
        assert vision.execute({})["lifecycleState"] == "ACTIVE"
        assert aidp.execute({})["status"] == "READY"
    assert [f.fired for f in faults] == [2, 2]

    # The waits log through Airflow's structlog (the captured output), the client's retries through logging.
    lines = (caplog.text + "".join(capfd.readouterr())).splitlines()
    aidp_retries = [line for line in lines if "/model-versions/get" in line and "; retry " in line]
    vision_lines = [line for line in lines if f"/20220125/models/{model_id}" in line and "HTTP 503" in line]
    assert [line.split("; retry ")[1].split(" ")[0] for line in aidp_retries] == ["1/2", "2/2"], aidp_retries
    assert all("OCI AI Data Platform GET /20260430/aiDataPlatforms/" in line for line in aidp_retries), aidp_retries
    # Vision's client sends once per read (no retry line): the wait says twice it could not read, and why.
    assert len(vision_lines) == 2 and all("could not be read (OCI Vision GET " in line for line in vision_lines)
    assert not any("; retry " in line for line in vision_lines), vision_lines
    assert not any("OCI Vision GET" in line and "model-versions" in line for line in lines)


# -- a user's "mark failed" while the triggerer repeats its cancel ---------------------------------------
# Airflow 3.3's triggerer loop turns about once a second; at each turn its supervisor answers the state sync
# with every trigger still being cancelled, and the runner cancels that trigger's task again. Turned faster
# here (the same thing, more often): a slower turn only gives on_kill more time between repeats.
TRIGGERER_TURN = 0.2


@pytest.mark.integration
@pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="a trigger's on_kill and the triggerer's repeated cancels: Airflow 3.3"
)
def test_a_trigger_marked_failed_cancels_its_training_though_the_triggerer_repeats_the_cancel_meanwhile(
    sandbox, oci_vision_hook, monkeypatch, caplog, capfd
):
    """The production test's failure (issue 28): Airflow took seconds to say the task was marked failed,
    the triggerer's next turns cancelled the trigger again, and on_kill ended with nothing cancelled or
    logged. The training must be cancelled and the log must say so."""
    from types import SimpleNamespace

    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from fixtures.oci_vision import vision_arguments

    from airflow_provider_modelreg import cancellation
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    sandbox.sandbox.state.lifecycle_seconds["oci_vision"] = 3600.0  # training far longer than the test
    created = oci_vision_hook.create_model(validate_request(CreateModelDetails, vision_arguments()))
    ref = {"model_id": created.model["id"], "work_request_id": created.work_request_id}
    reads = count_reads(sandbox, "/20220125/models/")
    answer_after = 1.5  # seconds Airflow takes to answer the task's state: several turns of the triggerer
    asked: list[str] = []

    async def slowly_marked_failed(ti: Any) -> str:
        asked.append(ti.task_id)
        await asyncio.sleep(answer_after)  # the supervisor's answer arriving, not synchronisation
        return "failed"

    monkeypatch.setattr(cancellation, "_atask_instance_state", slowly_marked_failed)
    trigger = LifecycleTrigger(
        spec="airflow_provider_modelreg.hooks.oci_vision:MODEL_LIFECYCLE",
        conn_id="oci_vision_test",
        ref=ref,
        poll_interval=0.2,
        end_time=1e12,
        cancel_on_kill=True,
    )
    trigger.task_instance = SimpleNamespace(
        id="0" * 32,
        dag_id="cancel_dag",
        task_id="train",
        run_id="manual__1",
        map_index=-1,
        try_number=1,
        context_carrier=None,
    )

    async def triggerer() -> None:
        runner = TriggerRunner()
        task = asyncio.create_task(runner.run_trigger(1, trigger))
        runner.triggers[1] = {"task": task, "name": "cancel_dag/train", "is_watcher": False, "events": 0}
        await until(lambda: reads.fired >= 1 or task.done())  # the wait is polling
        while not task.done():  # a user marked the task failed: cancelled at every turn until finished
            runner.to_cancel.append(1)
            await runner.cancel_triggers()
            await asyncio.wait({task}, timeout=TRIGGERER_TURN)
        with pytest.raises(asyncio.CancelledError):
            task.result()

    with caplog.at_level(logging.INFO):
        asyncio.run(triggerer())
    logged = caplog.text + "".join(capfd.readouterr())
    work_request = oci_vision_hook.get_work_request(ref["work_request_id"])
    assert asked == ["train"]
    assert work_request["status"] == "CANCELED", logged
    assert "(the task was marked failed)" in logged
