"""What every hook reads from its connection besides credentials: timeout, TLS and retry settings."""

from __future__ import annotations

import json

import pytest

from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook
from airflow_provider_modelreg.hooks.oci_base import OCI_RETRY
from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook
from airflow_provider_modelreg.http import RetryPolicy, ServiceError
from airflow_provider_modelreg.sandbox.faults import FaultRule


def hook_with_extras(monkeypatch, conn: dict, extras: dict, hook_class=HappyRobotHook, **kwargs):
    monkeypatch.setenv("AIRFLOW_CONN_WITH_EXTRAS", json.dumps(conn | {"extra": json.dumps(extras)}))
    return hook_class(conn_id="with_extras", **kwargs)


@pytest.mark.integration
def test_retry_max_attempts_from_the_connection_bounds_the_retries(monkeypatch, happyrobot_conn, sandbox):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=503, method="GET", count=5))
    hook = hook_with_extras(monkeypatch, happyrobot_conn, {"retry_max_attempts": 2})
    with pytest.raises(ServiceError, match="HTTP 503"):
        hook.get_model("a" * 24)
    assert sandbox.sandbox.faults.injected == {"status_503": 2}


def test_connection_retry_settings_refine_the_service_default(monkeypatch, happyrobot_conn, oci_conn_fields):
    hr = hook_with_extras(monkeypatch, happyrobot_conn, {"retry_max_attempts": "3", "retry_max_seconds": 20})
    assert (hr.client.retry.max_attempts, hr.client.retry.total_budget) == (3, 20.0)
    assert hr.client.retry.base_delay == RetryPolicy().base_delay
    oci = hook_with_extras(monkeypatch, {"conn_type": "oci"}, oci_conn_fields, OCIVisionHook)
    assert oci.client.retry == OCI_RETRY
    oci = hook_with_extras(
        monkeypatch, {"conn_type": "oci"}, oci_conn_fields | {"retry_max_seconds": 60}, OCIVisionHook
    )
    assert (oci.client.retry.max_attempts, oci.client.retry.total_budget) == (OCI_RETRY.max_attempts, 60.0)


def test_a_policy_given_in_code_wins_over_the_connection(monkeypatch, happyrobot_conn):
    mine = RetryPolicy(max_attempts=9)
    hook = hook_with_extras(monkeypatch, happyrobot_conn, {"retry_max_attempts": 2}, retry=mine)
    assert hook.client.retry is mine


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        ({"retry_max_attempts": 0}, "'retry_max_attempts' must be at least 1, got 0"),
        ({"retry_max_attempts": "2.5"}, "'retry_max_attempts' must be an integer, got '2.5'"),
        ({"retry_max_seconds": "soon"}, "'retry_max_seconds' must be a number, got 'soon'"),
        ({"timeout": -1}, "'timeout' must be at least 0.001, got -1"),
    ],
)
def test_bad_settings_name_the_extra_and_the_rule(monkeypatch, happyrobot_conn, extras, message):
    hook = hook_with_extras(monkeypatch, happyrobot_conn, extras)
    with pytest.raises(ValueError, match=f"connection extra {message}$".replace("(", r"\(").replace(".", r"\.")):
        hook.client  # noqa: B018  (building the client reads the settings)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("h.example/mlflow", 5505, "https://h.example:5505/mlflow"),
        ("http://h.example/mlflow/", 5505, "http://h.example:5505/mlflow"),
        ("http://h.example:8080/mlflow", 5505, "http://h.example:8080/mlflow"),  # the host's own port wins
        ("http://[::1]/mlflow", 5505, "http://[::1]:5505/mlflow"),
        ("h.example", None, "https://h.example"),
    ],
)
def test_a_port_field_goes_into_the_authority_not_after_the_path(host, port, url):
    from airflow_provider_modelreg.hooks.base import base_url_of

    assert base_url_of(host, "", port=port) == url


def test_credentials_in_the_host_are_refused_without_echoing_them(monkeypatch, happyrobot_conn):
    hook = hook_with_extras(monkeypatch, happyrobot_conn | {"host": "https://bob:pw-in-host@api.example"}, {})
    ok, message = hook.test_connection()
    assert not ok and "must not hold credentials" in message and "pw-in-host" not in message
