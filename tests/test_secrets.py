"""Secrets stay secret: a canary secret in every secret field never reaches logs, XCom, rendered
templates, trigger kwargs or exception text, on success and on failure paths."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

pytestmark = pytest.mark.integration

CANARY = "canary-Zq8vX3kP9wLm2Rt7"


@pytest.fixture
def trigger_kwargs(monkeypatch) -> list[dict[str, Any]]:
    """Every trigger the run serialises, as Airflow stores it."""
    seen: list[dict[str, Any]] = []
    original = LifecycleTrigger.serialize

    def spy(self: LifecycleTrigger) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = original(self)
        seen.append(kwargs)
        return classpath, kwargs

    monkeypatch.setattr(LifecycleTrigger, "serialize", spy)
    return seen


def rendered_fields(result: Any) -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == result.run_id)
        ).all()
        return json.dumps([row.rendered_fields for row in rows], default=str)


def task_log_files() -> str:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()) if logs.exists() else ""


def assert_no_canary(result: Any, capfd: pytest.CaptureFixture[str], trigger_kwargs: list[dict[str, Any]]) -> None:
    out, err = capfd.readouterr()
    places = {
        "stdout/stderr (task logs)": out + err,
        "log files": task_log_files(),
        "XCom": json.dumps({t: result.xcom(t) for t in result.task_states()}, default=str),
        "rendered template fields": rendered_fields(result),
        "trigger kwargs": json.dumps(trigger_kwargs),
    }
    leaks = [where for where, text in places.items() if CANARY in text]
    assert leaks == []


@pytest.fixture
def canary_conn(sandbox: Any, happyrobot_conn: dict[str, Any]) -> dict[str, Any]:
    sandbox.sandbox.state.happyrobot_api_keys.add(CANARY)
    return happyrobot_conn | {"password": CANARY, "extra": {"organization_id": "org"}}


def happyrobot_dag(dag_id: str, name: str):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        train = HappyRobotCreateModelOperator(
            task_id="train",
            conn_id="hr",
            use_case_id="uc",
            name=name,
            from_model_id="e" * 24,
            train_sample_ids=["s"],
            test_sample_ids=[],
            deferrable=True,
            poll_interval=0.2,
        )
        wait = HappyRobotModelSensor(
            task_id="wait",
            conn_id="hr",
            model_id="{{ ti.xcom_pull('train')['id'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        train >> wait
    return dag


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_happyrobot_api_key_never_leaks(run_dag, sandbox, canary_conn, capfd, trigger_kwargs, outcome):
    name = "ok-bot" if outcome == "success" else "doomed-bot"
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="happyrobot", match="doomed", reason="bad data"))
    result = run_dag(happyrobot_dag(f"secrets_hr_{outcome}", name), {"hr": canary_conn})
    assert result.state == ("success" if outcome == "success" else "failed")
    assert trigger_kwargs, "the run deferred, so a trigger was serialised"
    assert_no_canary(result, capfd, trigger_kwargs)


def test_a_rejected_api_key_is_not_echoed_in_the_error(run_dag, sandbox, happyrobot_conn, capfd, trigger_kwargs):
    result = run_dag(happyrobot_dag("secrets_hr_rejected", "bot"), {"hr": happyrobot_conn | {"password": CANARY}})
    assert result.state == "failed"
    out = capfd.readouterr().out
    assert "HTTP 401" in out
    assert CANARY not in out
