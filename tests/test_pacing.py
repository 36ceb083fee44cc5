"""Pacing: every wait polls at its configured interval, unless the modelreg_sandbox fixture sets the pace."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_modelreg import pacing
from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE as MODEL
from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
from airflow_provider_modelreg.lifecycle import LifecycleTrigger, wait_sync
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

CONFIGURED = 30.0
PACE = 0.2


def test_a_wait_polls_at_its_configured_interval_unless_a_pace_is_set(monkeypatch):
    monkeypatch.delenv(pacing.PACE_ENV, raising=False)
    assert pacing.poll_interval(CONFIGURED) == CONFIGURED
    monkeypatch.setenv(pacing.PACE_ENV, str(PACE))
    assert pacing.poll_interval(CONFIGURED) == PACE
    assert pacing.poll_interval(0.05) == 0.05  # a pace only ever shortens a wait's interval


@pytest.mark.parametrize("value", ["", "0", "-1", "soon"])
def test_a_pace_that_is_not_a_positive_number_leaves_waits_as_configured(monkeypatch, value):
    monkeypatch.setenv(pacing.PACE_ENV, value)
    assert pacing.poll_interval(CONFIGURED) == CONFIGURED


@pytest.fixture(params=["production", "modelreg_sandbox"])
def pace(request, monkeypatch) -> float:
    """What every wait must poll at: the configured interval (no pace set: production, any test without the
    fixture) or the pace the fixture sets (PACE_ENV, as pytest_plugin.sandbox_session sets it)."""
    if request.param == "production":
        monkeypatch.delenv(pacing.PACE_ENV, raising=False)
        return CONFIGURED
    monkeypatch.setenv(pacing.PACE_ENV, str(PACE))
    return PACE


@pytest.fixture
def training_model(sandbox, monkeypatch, happyrobot_conn) -> str:
    """A HappyRobot model that stays in training for the whole test."""
    sandbox.sandbox.state.lifecycle_seconds["*"] = 3600.0
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    request = CreateModelRequest(
        use_case_id="u", name="m", from_model_id="d" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )
    return HappyRobotHook(conn_id="hr").create_model(request)["id"]


class _Enough(Exception):
    """Three pauses recorded: the wait has shown its interval."""


@pytest.mark.integration
def test_an_operators_sync_wait_pauses_its_interval_between_reads(training_model, pace):
    pauses: list[float] = []

    def sleep(seconds: float) -> None:  # the wait's pause, recorded instead of slept
        pauses.append(seconds)
        if len(pauses) == 3:
            raise _Enough

    with pytest.raises(_Enough):
        wait_sync(
            HappyRobotHook(conn_id="hr").client,
            MODEL,
            {"model_id": training_model},
            poll_interval=CONFIGURED,
            timeout=3600,
            sleep=sleep,
        )
    assert pauses == [pace, pace, pace]


@pytest.mark.integration
def test_a_deferred_wait_polls_at_its_interval(training_model, pace, monkeypatch):
    from airflow_provider_modelreg import ticks

    trigger = LifecycleTrigger(
        spec=MODEL.key, conn_id="hr", ref={"model_id": training_model}, poll_interval=CONFIGURED, end_time=1e12
    )
    parked: list[tuple[float, float]] = []

    async def run() -> None:
        paused = asyncio.Event()

        async def park(*args: Any, pause: float, poll_interval: float, **kwargs: Any) -> Any:
            parked.append((pause, poll_interval))  # the wait between two reads, recorded instead of waited
            paused.set()
            await asyncio.Future()  # never served: the test ends the wait

        monkeypatch.setattr(ticks, "park", park)
        task = asyncio.ensure_future(trigger.run().__anext__())
        try:
            await asyncio.wait_for(paused.wait(), timeout=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await trigger.cleanup()

    asyncio.run(run())
    assert parked == [(pace, pace)]
    assert trigger.serialize()[1]["poll_interval"] == pace


def test_a_sync_sensor_pokes_at_its_interval(monkeypatch, pace):
    from airflow.sdk import BaseSensorOperator

    seen: list[float] = []
    monkeypatch.setattr(BaseSensorOperator, "execute", lambda self, context: seen.append(self.poke_interval))
    sensor = HappyRobotModelSensor(task_id="wait", model_id="m" * 24, poke_interval=CONFIGURED, deferrable=False)
    sensor.execute({})
    assert seen == [pace]
