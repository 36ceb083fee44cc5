"""HappyRobotHook against the sandbox: auth, calls, errors, retries."""

from __future__ import annotations

import json

import pytest

from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceError
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.sandbox.faults import FaultRule

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, total_budget=5)
REQUEST = CreateModelRequest(
    use_case_id="uc", name="bot", from_model_id="b" * 24, train_sample_ids=["s1"], test_sample_ids=[]
)


@pytest.fixture
def hook(monkeypatch, happyrobot_conn) -> HappyRobotHook:
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    return HappyRobotHook(conn_id="hr", retry=FAST)


def test_create_get_and_list_models(hook):
    model = hook.create_model(REQUEST)
    assert len(model["id"]) == 24 and model["status"] == "pending"
    assert hook.get_model(model["id"])["name"] == "bot"
    assert [m["id"] for m in hook.list_models(use_case_id="uc")] == [model["id"]]
    assert hook.list_models(use_case_id="other") == []


def test_test_connection_reports_success_and_a_bad_key(hook, monkeypatch, happyrobot_conn):
    ok, message = hook.test_connection()
    assert ok, message
    monkeypatch.setenv("AIRFLOW_CONN_BAD", json.dumps(happyrobot_conn | {"password": "wrong-key"}))
    ok, message = HappyRobotHook(conn_id="bad", retry=FAST).test_connection()
    assert not ok
    assert "HTTP 401" in message and "Invalid or missing API key" in message
    assert "wrong-key" not in message


def test_organization_id_is_sent_as_header(monkeypatch, happyrobot_conn, sandbox):
    conn = happyrobot_conn | {"extra": json.dumps({"organization_id": "org-42"})}
    monkeypatch.setenv("AIRFLOW_CONN_HR_ORG", json.dumps(conn))
    model = HappyRobotHook(conn_id="hr_org", retry=FAST).create_model(REQUEST)
    assert model["organization_id"] == "org-42"


@pytest.mark.parametrize(
    "fault",
    [
        FaultRule(kind="status", status=429, retry_after=0.01, count=2),
        FaultRule(kind="status", status=503, count=2),
        FaultRule(kind="drop", count=2),
    ],
    ids=["429", "503", "connection-reset"],
)
def test_reads_retry_through_throttling_outages_and_resets(hook, sandbox, fault):
    model = hook.create_model(REQUEST)
    sandbox.sandbox.faults.rules.append(fault)
    assert hook.get_model(model["id"])["id"] == model["id"]
    assert sum(sandbox.sandbox.faults.injected.values()) == 2


def test_fails_fast_on_400_with_status_code_message_and_request_id(hook, sandbox):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=400, count=5))
    with pytest.raises(ServiceError) as caught:
        hook.list_models()
    err = caught.value
    assert (err.status, err.code, err.request_id) == (400, "SandboxInjectedFault", "SANDBOX-FAULT")
    assert "injected HTTP 400" in str(err) and "request id: SANDBOX-FAULT" in str(err)
    assert sandbox.sandbox.faults.injected == {"status_400": 1}  # not retried


def test_service_validation_error_keeps_the_service_message(hook):
    with pytest.raises(ServiceError) as caught:
        hook.request(ApiRequest("POST", "/models", json={"name": "x"}, idempotent=False))
    assert caught.value.status == 400
    assert caught.value.code == "Bad Request"
    assert caught.value.request_id


def test_a_create_is_not_resent_blindly_after_an_ambiguous_failure(hook, sandbox):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", count=1))
    with pytest.raises(ServiceError) as caught:
        hook.create_model(REQUEST)
    assert caught.value.status is None  # the connection died mid-answer
    assert len(sandbox.sandbox.state.all("happyrobot")) == 1  # created once, never resent


def test_a_model_id_with_path_characters_stays_one_segment(hook, sandbox):
    hook.create_model(REQUEST)
    with pytest.raises(ServiceError) as caught:
        hook.get_model("../models?use_case_id=uc")  # unquoted, this would list the models
    assert caught.value.status == 404


def test_lookup_finds_models_by_exact_name_and_source_oldest_first(hook, sandbox):
    first = hook.create_model(REQUEST)
    assert [m["id"] for m in hook.find_models(REQUEST)] == [first["id"]]
    assert hook.find_models(REQUEST.model_copy(update={"from_model_id": "c" * 24})) == []
    assert hook.find_models(REQUEST.model_copy(update={"name": "bo"})) == []  # exact names only
    assert hook.find_models(REQUEST.model_copy(update={"use_case_id": "other"})) == []
    second = hook.create_model(REQUEST)
    assert [m["id"] for m in hook.find_models(REQUEST)] == [first["id"], second["id"]]


def test_a_created_at_without_a_timezone_is_read_as_utc(hook, sandbox):
    import datetime as dt

    first, second = hook.create_model(REQUEST), hook.create_model(REQUEST)
    record = sandbox.sandbox.state.get("happyrobot", second["id"])
    # naive and an hour earlier than the first's: read as UTC, it is the older one
    record["created_at"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert [m["id"] for m in hook.find_models(REQUEST)] == [second["id"], first["id"]]
