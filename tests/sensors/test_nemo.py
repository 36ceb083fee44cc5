"""NemoModelSpecSensor against the sandbox: sync and deferred, and timeouts that name entity and workspace."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time

import pytest

from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE
from airflow_provider_modelreg.http import ApiRequest
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.models.nemo import CreateModelEntity
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor
from airflow_provider_modelreg.version_compat import AirflowSensorTimeout

pytestmark = pytest.mark.integration

CONN = "nemo_test"


def make_dag(dag_id: str, **sensor_kwargs):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        NemoModelSpecSensor(task_id="wait_for_spec", conn_id=CONN, poke_interval=0.2, **sensor_kwargs)
    return dag


def test_waits_for_the_spec_sync_and_deferred_with_the_same_xcom(run_dag, nemo_hook, nemo_conn, sandbox, trigger_runs):
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 1.0
    nemo_hook.create_model("team-a", CreateModelEntity(name="sync-bot", fileset="team-a/ckpt"))
    sync = run_dag(make_dag("nemo_sensor_sync", name="sync-bot", workspace="team-a"), {CONN: nemo_conn})
    # The spec analysis runs until the trigger polls, however slowly the run gets there (a loaded machine, or
    # Airflow 3.2's slower dag.test, reached the first poke after a fixed delay and never deferred).
    state.lifecycle_seconds["nemo"] = 3600
    nemo_hook.create_model("team-a", CreateModelEntity(name="deferred-bot", fileset="team-a/ckpt"))

    def end_the_analysis_once_deferred() -> None:
        deadline = time.monotonic() + 120
        while not trigger_runs and time.monotonic() < deadline:
            time.sleep(0.05)
        state.lifecycle_seconds["nemo"] = 0

    ender = threading.Thread(target=end_the_analysis_once_deferred, daemon=True)
    ender.start()
    deferred = run_dag(
        make_dag("nemo_sensor_deferred", name="deferred-bot", workspace="team-a", deferrable=True), {CONN: nemo_conn}
    )
    ender.join(timeout=5)

    assert (sync.state, deferred.state) == ("success", "success")
    # The triggerer waited on the entity (its spec watches the spec-analysis job): one wait, on the entity's ref.
    assert trigger_runs == [{"workspace": "team-a", "name": "deferred-bot"}]
    sync_entity, deferred_entity = sync.xcom("wait_for_spec"), deferred.xcom("wait_for_spec")
    assert sync_entity["spec"] is not None and sync_entity["spec"] == deferred_entity["spec"]
    assert (sync_entity["name"], deferred_entity["name"]) == ("sync-bot", "deferred-bot")
    assert nemo_hook.get_model("team-a", "sync-bot")["spec"] == sync_entity["spec"]


def test_the_workspace_defaults_to_the_connections(monkeypatch, nemo_hook, nemo_conn, task_context):
    nemo_hook.create_model("team-b", CreateModelEntity(name="bot"))  # no fileset: waits for one
    conn = nemo_conn | {"extra": json.dumps({"workspace": "team-b"})}
    monkeypatch.setenv("AIRFLOW_CONN_NEMO_TEAM_B", json.dumps(conn))
    sensor = NemoModelSpecSensor(task_id="s", conn_id="nemo_team_b", name="bot")
    assert sensor.resource_ref() == {"workspace": "team-b", "name": "bot"}
    assert sensor.poke(task_context()).is_done is False


def test_a_sync_timeout_names_entity_and_workspace(nemo_hook, sandbox, task_context):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 120  # the analysis job still runs
    nemo_hook.create_model("team-a", CreateModelEntity(name="stuck-bot", fileset="team-a/ckpt"))
    sensor = NemoModelSpecSensor(
        task_id="s", conn_id=CONN, name="stuck-bot", workspace="team-a", poke_interval=0.1, timeout=0.5
    )
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor.execute(task_context())
    assert str(caught.value).startswith("NeMo model entity workspace=team-a, name=stuck-bot: Sensor has timed out")


def test_a_deferred_timeout_event_names_entity_and_workspace(nemo_hook, sandbox):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 120  # the analysis job still runs
    nemo_hook.create_model("team-a", CreateModelEntity(name="stuck-bot", fileset="team-a/ckpt"))
    sensor = NemoModelSpecSensor(task_id="s", conn_id=CONN, name="stuck-bot", workspace="team-a")
    trigger = LifecycleTrigger(
        spec=MODEL_SPEC_LIFECYCLE.key,
        conn_id=CONN,
        ref=sensor.resource_ref(),
        poll_interval=0.1,
        end_time=time.time() + 0.3,
    )

    async def first_event():
        try:
            async for event in trigger.run():
                return event.payload
        finally:
            await trigger.cleanup()

    event = asyncio.run(first_event())
    assert event["status"] == "timeout"
    assert event["message"] == (
        "NeMo model entity workspace=team-a, name=stuck-bot was still AWAITING_SPEC when the wait timed out"
    )


def test_a_deferred_sensor_that_times_out_fails_the_task(run_dag, nemo_hook, sandbox, nemo_conn):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 120  # the analysis job still runs
    nemo_hook.create_model("team-a", CreateModelEntity(name="stuck-bot", fileset="team-a/ckpt"))
    dag = make_dag("nemo_sensor_timeout", name="stuck-bot", workspace="team-a", deferrable=True, timeout=1)
    result = run_dag(dag, {CONN: nemo_conn})
    assert result.state == "failed"
    assert result.task_state("wait_for_spec") == "failed"


def test_a_missing_entity_fails_the_poke_with_a_404(nemo_env, sandbox, task_context):
    from airflow_provider_modelreg.http import ServiceError

    sensor = NemoModelSpecSensor(task_id="s", conn_id=CONN, name="missing", workspace="team-a")
    with pytest.raises(ServiceError) as caught:
        sensor.poke(task_context())
    assert caught.value.status == 404
    assert "Model with workspace 'team-a' and name 'missing' not found" in str(caught.value)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_a_failed_spec_analysis_job_fails_the_sensor_at_once(run_dag, nemo_hook, sandbox, nemo_conn, capfd, deferrable):
    """Issue 14 item 3: the job's error ends the wait in the sync and the deferrable sensor alike."""
    from airflow.sdk import DAG

    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="nemo", match="doomed", reason="bad checkpoint"))
    nemo_hook.create_model("default", CreateModelEntity(name="doomed-entity", fileset="default/ckpt"))
    with DAG(f"nemo_sensor_job_error_{deferrable}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        NemoModelSpecSensor(
            task_id="wait",
            conn_id=CONN,
            name="doomed-entity",
            deferrable=deferrable,
            poke_interval=0.2,
            retries=2,
            timeout=30,
        )
    result = run_dag(dag, {CONN: nemo_conn})
    assert result.state == "failed" and result.try_number("wait") == 1
    out = capfd.readouterr().out
    assert "name=doomed-entity" in out and "models-system-" in out and "ended error: bad checkpoint" in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_after_a_patch_to_a_new_fileset_it_returns_that_filesets_spec(
    run_dag, nemo_hook, nemo_conn, sandbox, trigger_runs, deferrable
):
    """Issue 29: the platform answers the old fileset's spec until the new spec job ends; the sensor waits for
    the spec of the fileset the entity names (ws/late-ckpt's config has 3 layers, ws/ckpt's 2)."""
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 0
    name = f"moved-{deferrable}".lower()
    nemo_hook.create_model("ws", CreateModelEntity(name=name, fileset="ws/ckpt"))
    assert nemo_hook.get_model("ws", name)["spec"]["num_layers"] == 2
    state.lifecycle_seconds["nemo"] = 3600  # the new analysis runs until the sensor has looked at least once
    nemo_hook.client.request(
        ApiRequest("PATCH", f"/apis/models/v2/workspaces/ws/models/{name}", json={"fileset": "ws/late-ckpt"})
    )
    assert nemo_hook.get_model("ws", name)["spec"]["num_layers"] == 2  # the old spec, meanwhile

    listed = state.counters.get("nemo.job_lists", 0)

    def end_the_analysis_once_looked_at() -> None:
        # Deferred: once the triggerer waits; sync: once a poke has seen the job running.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if trigger_runs if deferrable else state.counters.get("nemo.job_lists", 0) > listed:
                break
            time.sleep(0.05)
        state.lifecycle_seconds["nemo"] = 0

    ender = threading.Thread(target=end_the_analysis_once_looked_at, daemon=True)
    ender.start()
    result = run_dag(
        make_dag(f"nemo_sensor_moved_{deferrable}", name=name, workspace="ws", deferrable=deferrable), {CONN: nemo_conn}
    )
    ender.join(timeout=5)
    assert result.state == "success"
    assert result.xcom("wait_for_spec")["spec"]["num_layers"] == 3


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_a_cancelled_spec_analysis_job_fails_the_sensor_at_once_saying_so(
    run_dag, nemo_hook, sandbox, nemo_conn, capfd, deferrable
):
    """Nothing will write the spec of a fileset whose analysis was cancelled: the wait fails, not times out."""
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 3600
    name = f"halted-{str(deferrable).lower()}"
    nemo_hook.create_model("ws", CreateModelEntity(name=name, fileset="ws/ckpt"))
    jobs = nemo_hook.request(ApiRequest("GET", "/apis/jobs/v2/workspaces/ws/jobs")).data["data"]
    [job] = [job for job in jobs if job["description"] == f"Model Spec Analyzer for model ws/{name}"]
    nemo_hook.request(ApiRequest("POST", f"/apis/jobs/v2/workspaces/ws/jobs/{job['name']}/cancel"))

    dag = make_dag(f"nemo_sensor_cancelled_{deferrable}", name=name, workspace="ws", deferrable=deferrable, retries=2)
    result = run_dag(dag, {CONN: nemo_conn})
    assert result.state == "failed" and result.try_number("wait_for_spec") == 1
    out = capfd.readouterr().out
    assert f"name={name} ended SPEC_ANALYSIS_CANCELLED: spec-analysis job {job['name']} was cancelled" in out
