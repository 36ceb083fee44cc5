"""Sensors that start in the triggerer (``start_from_trigger``): the ref fields travel as templates, the
triggerer renders them, and the same LifecycleTrigger on the same spec waits; no poke runs in a worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fixtures.oci_vision import vision_arguments

from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor
from airflow_provider_modelreg.sensors.mlflow import MlflowRunSensor
from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor
from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

pytestmark = [pytest.mark.integration, pytest.mark.airflow_feature("start_from_trigger")]

TEMPLATED_ID = "{{ ti.xcom_pull(task_ids='train')['id'] }}"


def test_start_trigger_args_carry_the_ref_fields_as_templates_and_the_sensors_timeout():
    sensor = OCIVisionModelSensor(
        task_id="wait",
        model_id=TEMPLATED_ID,
        conn_id="oci_vision",
        start_from_trigger=True,
        poke_interval=5,
        timeout=90,
    )
    args = sensor.start_trigger_args
    assert sensor.deferrable and sensor.start_from_trigger
    assert args.trigger_cls == "airflow_provider_modelreg.lifecycle.LifecycleTrigger"
    assert args.next_method == "execute_complete" and args.timeout == dt.timedelta(seconds=90)
    assert args.trigger_kwargs == {
        "spec": "airflow_provider_modelreg.hooks.oci_vision:MODEL_LIFECYCLE",
        "conn_id": "oci_vision",
        "poll_interval": 5.0,
        "end_time": None,
        "ref_fields": ["model_id", "work_request_id"],
        "model_id": TEMPLATED_ID,
        "work_request_id": None,
    }
    # The same trigger class takes them as they are, and serialises back to them.
    trigger = LifecycleTrigger(**args.trigger_kwargs)
    assert trigger.serialize()[1] == args.trigger_kwargs | {"ref": {}}
    assert OCIVisionModelSensor(task_id="w", model_id="m").start_trigger_args is None


def test_a_sensor_whose_ref_needs_its_connection_refuses_start_from_trigger():
    with pytest.raises(ValueError, match="start_from_trigger is not available"):
        MlflowRunSensor(task_id="wait", run_id="r", start_from_trigger=True)
    with pytest.raises(ValueError, match="needs workspace"):
        NemoModelSpecSensor(task_id="wait", name="llm", start_from_trigger=True)
    assert NemoModelSpecSensor(task_id="wait", name="llm", workspace="ws", start_from_trigger=True).start_trigger_args


def test_the_trigger_started_from_templates_waits_on_the_rendered_ref(sandbox, happyrobot_conn, monkeypatch):
    import asyncio
    import json

    from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.happyrobot import CreateModelRequest

    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    request = validate_request(
        CreateModelRequest,
        {
            "use_case_id": "uc-1",
            "name": "bot",
            "from_model_id": "a" * 24,
            "train_sample_ids": ["s1"],
            "test_sample_ids": ["t1"],
        },
    )
    model = HappyRobotHook(conn_id="hr").create_model(request)
    sensor = HappyRobotModelSensor(task_id="wait", model_id="{{ model }}", conn_id="hr", start_from_trigger=True)
    trigger = LifecycleTrigger(**sensor.start_trigger_args.trigger_kwargs)
    trigger.model_id = model["id"]  # what the triggerer's render_template_fields writes

    async def first_event() -> Any:
        async for event in trigger.run():
            await trigger.cleanup()
            return event.payload

    event = asyncio.run(first_event())
    assert event == {"status": "success", "state": "active", "ref": {"model_id": model["id"]}}


def test_a_sensor_set_to_start_from_the_trigger_still_works_where_a_worker_starts_it(run_dag, sandbox, oci_vision_conn):
    """dag.test (like Airflow 3.2's scheduler) does not start tasks in the triggerer: the sensor then runs as
    a deferrable one, poking once and deferring to the same trigger. That Airflow 3.3's scheduler starts
    it in the triggerer with no worker at all is proven on real components in tests/e2e/test_production.py."""
    from airflow.sdk import DAG

    with DAG("start_from_trigger_vision", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        OCIVisionCreateModelOperator(
            task_id="train", **vision_arguments(conn_id="oci_vision", wait_for_completion=False)
        ) >> OCIVisionModelSensor(
            task_id="wait", conn_id="oci_vision", model_id=TEMPLATED_ID, start_from_trigger=True, poke_interval=0.2
        )
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.state == "success"
    assert result.xcom("wait")["lifecycleState"] == "ACTIVE"
    assert result.xcom("wait")["id"] == result.xcom("train")["id"]


def test_the_nemo_trigger_started_directly_waits_for_the_new_filesets_spec_after_a_patch(
    sandbox, nemo_hook, nemo_env, task_context
):
    """Issue 29: the spec-analysis job is checked by the NeMo spec itself, so the trigger the triggerer starts
    (no poke in a worker first) waits while the job for the new fileset runs, though the entity still answers the
    old fileset's spec, and the sensor then returns the new one (ws/late-ckpt has 3 layers, ws/ckpt 2)."""
    import asyncio
    import time

    from airflow_provider_modelreg.http import ApiRequest
    from airflow_provider_modelreg.models.nemo import CreateModelEntity

    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 0
    nemo_hook.create_model("ws", CreateModelEntity(name="moved", fileset="ws/ckpt"))
    assert nemo_hook.get_model("ws", "moved")["spec"]["num_layers"] == 2
    state.lifecycle_seconds["nemo"] = 3600  # the new analysis runs until the trigger has seen it running
    nemo_hook.request(
        ApiRequest("PATCH", "/apis/models/v2/workspaces/ws/models/moved", json={"fileset": "ws/late-ckpt"})
    )

    sensor = NemoModelSpecSensor(
        task_id="wait", name="{{ name }}", workspace="ws", conn_id=nemo_env, start_from_trigger=True, poke_interval=0.1
    )
    trigger = LifecycleTrigger(**sensor.start_trigger_args.trigger_kwargs)
    trigger.name = "moved"  # what the triggerer's render_template_fields writes
    listed = state.counters.get("nemo.job_lists", 0)

    async def events() -> tuple[dict[str, Any], bool]:
        running = trigger.run()
        first = asyncio.ensure_future(anext(running))
        deadline = time.monotonic() + 60
        while state.counters.get("nemo.job_lists", 0) < listed + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        waited_while_the_job_ran = not first.done()
        state.lifecycle_seconds["nemo"] = 0  # the analysis ends
        event = await asyncio.wait_for(first, 60)
        await running.aclose()
        await trigger.cleanup()
        return event.payload, waited_while_the_job_ran

    event, waited_while_the_job_ran = asyncio.run(events())
    assert waited_while_the_job_ran  # two looks at the running job, and no event
    assert event == {"status": "success", "state": "SPEC_READY", "ref": {"workspace": "ws", "name": "moved"}}
    sensor.name = "moved"
    assert sensor.execute_complete(task_context(), event)["spec"]["num_layers"] == 3
