"""The per-host request budget: every wait, sync poll and create of a process draws on one, and a 429 slows all."""

from __future__ import annotations

import json

import pytest

from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
from airflow_provider_modelreg.http import DEFAULT_REQUESTS_PER_SECOND, RequestBudget, ServiceClient, budget_for
from airflow_provider_modelreg.sandbox.faults import FaultRule


def test_a_burst_of_rate_sends_goes_at_once_then_one_every_one_over_rate():
    budget = RequestBudget(10)
    waits = [budget.reserve(now=100.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1) and waits[11] == pytest.approx(0.2)
    assert budget.reserve(now=200.0) == 0.0  # idle time refills the burst


def test_a_429_pauses_every_sender_and_halves_the_rate_which_climbs_back():
    budget = RequestBudget(10)
    budget.slow_down(retry_after=2.0, now=100.0)
    assert budget.reserve(now=100.0) == pytest.approx(2.0)
    assert budget.rate == 5.0
    budget.reserve(now=200.0)
    assert budget.rate == 10.0


def test_the_default_caps_remote_hosts_and_leaves_loopback_alone():
    assert budget_for("https://app.happyrobot.ai/api/v1", None).cap == DEFAULT_REQUESTS_PER_SECOND
    assert budget_for("http://127.0.0.1:8765", None) is None
    assert budget_for("http://127.0.0.1:8765", 3).cap == 3
    # One budget per host and rate, whichever client asks.
    assert budget_for("https://a.example/x", None) is budget_for("https://a.example/y", None)


@pytest.mark.integration
def test_the_extra_caps_sync_calls_and_a_429_slows_the_other_clients_of_the_host(sandbox, monkeypatch, happyrobot_conn):
    conn = happyrobot_conn | {"extra": json.dumps({"requests_per_second": 4})}
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(conn))
    monkeypatch.setattr(RequestBudget, "_registry", {})  # a fresh budget for this host
    slept: list[float] = []

    def client() -> ServiceClient:
        c = HappyRobotHook(conn_id="hr").client
        c._sleep = slept.append  # record, do not sleep
        return c

    first, second = client(), client()
    assert first.budget is second.budget and first.budget.cap == 4
    for _ in range(6):
        first.request(HappyRobotHook.probe_request)
    assert len(slept) == 2 and sum(slept) > 0  # four at once, then the budget spaces them
    slept.clear()
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=429, retry_after=3, method="GET", count=1))
    first.request(HappyRobotHook.probe_request)  # 429, then its own retry
    assert first.budget.throttled == 1
    slept.clear()
    second.request(HappyRobotHook.probe_request)
    assert slept and slept[0] >= 2.5  # the other client waits out the Retry-After too


def test_the_extra_is_declared_for_every_connection_type():
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    for conn_type in get_provider_info()["connection-types"]:
        assert "requests_per_second" in conn_type["conn-fields"], conn_type["connection-type"]
