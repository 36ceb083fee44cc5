"""MlflowHook and OCIDataPlatformMlflowHook: the same calls against a real MLflow server and the sandbox's
OCI AI Data Platform flavour; errors keep each flavour's code; flavour-only behaviour (auth, retry
tokens, dh-user-principal) checked where it exists."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx
import pytest
from airflow.sdk import Connection
from fixtures.mlflow import PLATFORM_ID, USER_PRINCIPAL, WORKSPACE_KEY

from airflow_provider_modelreg.hooks.mlflow import (
    IDEMPOTENCY_TAG,
    MlflowHook,
    OCIDataPlatformMlflowHook,
    is_already_exists,
    is_not_found,
    mlflow_hook,
    quote_filter_value,
)
from airflow_provider_modelreg.http import BearerAuth, RetryPolicy, ServiceError
from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.mlflow import (
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
    LogBatchRequest,
    Metric,
    Param,
)
from airflow_provider_modelreg.sandbox.faults import FaultRule

pytestmark = pytest.mark.integration


def new_run(hook: MlflowHook, experiment: str, **tags: str) -> dict:
    experiment_id = hook.get_or_create_experiment(experiment)["experiment_id"]
    tag_list = [{"key": k, "value": v} for k, v in tags.items()]
    return hook.create_run(CreateRunRequest(experiment_id=experiment_id, run_name="r", tags=tag_list))


# -- both flavours ------------------------------------------------------------------------------------
def test_experiments_get_create_and_duplicates(mlflow_target):
    hook, name = mlflow_target.hook(), mlflow_target.unique("exp")
    assert hook.get_experiment_by_name(name) is None
    experiment_id = hook.create_experiment(name)
    assert hook.get_experiment_by_name(name)["experiment_id"] == experiment_id
    with pytest.raises(ServiceError) as caught:
        hook.create_experiment(name)
    # Each flavour answers a duplicate with its own code; the hook recognises both.
    assert caught.value.code == ("Conflict" if mlflow_target.is_sandbox else "RESOURCE_ALREADY_EXISTS")
    assert is_already_exists(caught.value)
    assert hook.get_or_create_experiment(name)["experiment_id"] == experiment_id


def test_a_concurrent_experiment_create_is_not_an_error(mlflow_target, monkeypatch):
    hook, name = mlflow_target.hook(), mlflow_target.unique("exp")
    experiment_id = hook.create_experiment(name)  # "another task" created it between our get and create
    real_get = hook.get_experiment_by_name
    answers = iter([None])
    monkeypatch.setattr(hook, "get_experiment_by_name", lambda n: next(answers, None) or real_get(n))
    assert hook.get_or_create_experiment(name)["experiment_id"] == experiment_id


def test_runs_create_get_log_update_and_search(mlflow_target):
    hook = mlflow_target.hook()
    run = new_run(hook, mlflow_target.unique("exp"), **{IDEMPOTENCY_TAG: "key-1"})
    run_id, experiment_id = run["info"]["run_id"], run["info"]["experiment_id"]
    assert run["info"]["status"] == "RUNNING" and run["info"]["start_time"] > 0

    calls = hook.log_batch(
        LogBatchRequest(
            run_id=run_id,
            metrics=[Metric(key="precision", value=0.91, step=3, timestamp=1_700_000_000_000)],
            params=[Param(key="epochs", value=10)],
            tags=[{"key": "team", "value": "vision"}],
        )
    )
    assert calls == 1
    info = hook.set_run_status(run_id, "FINISHED")
    assert info["status"] == "FINISHED" and info["end_time"] >= info["start_time"]

    data = hook.get_run(run_id)["data"]
    assert {"key": "precision", "value": 0.91, "timestamp": 1_700_000_000_000, "step": 3} in data["metrics"]
    assert {"key": "epochs", "value": "10"} in data["params"]
    assert {"key": "team", "value": "vision"} in data["tags"]

    assert hook.find_run_by_tag(experiment_id, IDEMPOTENCY_TAG, "key-1")["info"]["run_id"] == run_id
    assert hook.find_run_by_tag(experiment_id, IDEMPOTENCY_TAG, "key-2") is None


def test_log_batch_splits_2500_metrics_into_3_calls_all_readable_back(mlflow_target):
    hook = mlflow_target.hook()
    run_id = new_run(hook, mlflow_target.unique("exp"))["info"]["run_id"]
    request = LogBatchRequest(
        run_id=run_id,
        metrics=[Metric(key=f"m{i}", value=i, timestamp=1) for i in range(2500)],
        params=[Param(key=f"p{i}", value=str(i)) for i in range(150)],
    )
    assert hook.log_batch(request) == 3
    data = hook.get_run(run_id)["data"]
    assert len(data["metrics"]) == 2500 and len(data["params"]) == 150
    assert {m["key"]: m["value"] for m in data["metrics"]}["m2499"] == 2499
    if mlflow_target.is_sandbox:
        assert mlflow_target.sandbox.sandbox.state.counters["mlflow.log_batch_calls"] == 3


def test_a_batch_over_the_limit_is_refused_by_the_server(mlflow_target):
    """What the splitting protects against: both flavours refuse 1001 metrics in one call."""
    hook = mlflow_target.hook()
    run_id = new_run(hook, mlflow_target.unique("exp"))["info"]["run_id"]
    from airflow_provider_modelreg.http import ApiRequest

    body = {"run_id": run_id, "metrics": [{"key": f"m{i}", "value": 1, "timestamp": 1, "step": 0} for i in range(1001)]}
    with pytest.raises(ServiceError) as caught:
        hook.request(ApiRequest("POST", f"{hook.tracking_api}/runs/log-batch", json=body, idempotent=True))
    assert caught.value.status == 400


def test_an_unknown_run_status_is_refused_before_sending(mlflow_target):
    hook = mlflow_target.hook()
    run_id = new_run(hook, mlflow_target.unique("exp"))["info"]["run_id"]
    with pytest.raises(InvalidRequest):
        hook.set_run_status(run_id, "DONE")
    assert hook.get_run(run_id)["info"]["status"] == "RUNNING"


def test_missing_resources_keep_the_flavours_not_found_code(mlflow_target):
    hook = mlflow_target.hook()
    with pytest.raises(ServiceError) as caught:
        hook.get_run("0" * 32)
    assert caught.value.status == 404 and is_not_found(caught.value)
    expected = "NotAuthorizedOrNotFound" if mlflow_target.is_sandbox else "RESOURCE_DOES_NOT_EXIST"
    assert caught.value.code == expected
    assert hook.get_registered_model(mlflow_target.unique("model")) is None


def test_registered_models_and_versions(mlflow_target):
    hook, name = mlflow_target.hook(), mlflow_target.unique("model")
    run_id = new_run(hook, mlflow_target.unique("exp"))["info"]["run_id"]
    model, created = hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    assert created and model["name"] == name
    assert hook.ensure_registered_model(CreateRegisteredModelRequest(name=name)) == (
        hook.get_registered_model(name),
        False,
    )
    with pytest.raises(ServiceError) as caught:
        hook.create_registered_model(CreateRegisteredModelRequest(name=name))
    assert is_already_exists(caught.value)

    source = f"runs:/{run_id}/model"
    tagged = {"name": name, "source": source, "run_id": run_id, "tags": [{"key": IDEMPOTENCY_TAG, "value": "k1"}]}
    version = hook.create_model_version(validate_request(CreateModelVersionRequest, tagged))
    assert version["version"] == "1" and version["source"] == source
    assert hook.get_model_version(name, 1)["run_id"] == run_id
    assert hook.find_model_version_by_tag(name, IDEMPOTENCY_TAG, "k1")["version"] == "1"
    assert hook.find_model_version_by_tag(name, IDEMPOTENCY_TAG, "k2") is None
    assert [v["version"] for v in hook.search_model_versions(f"name={quote_filter_value(name)}")] == ["1"]


def test_a_concurrent_registered_model_create_is_not_an_error(mlflow_target, monkeypatch):
    hook, name = mlflow_target.hook(), mlflow_target.unique("model")
    hook.create_registered_model(CreateRegisteredModelRequest(name=name))
    real_get = hook.get_registered_model
    answers = iter([None])
    monkeypatch.setattr(hook, "get_registered_model", lambda n: next(answers, None) or real_get(n))
    model, created = hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    assert (model["name"], created) == (name, False)


def test_test_connection_succeeds(mlflow_target):
    ok, message = mlflow_target.hook().test_connection()
    assert ok, message


# -- OCI AI Data Platform flavour ----------------------------------------------------------------------
@pytest.fixture
def aidp_hook(monkeypatch, aidp_conn) -> OCIDataPlatformMlflowHook:
    monkeypatch.setenv("AIRFLOW_CONN_AIDP", json.dumps(aidp_conn))
    hook = mlflow_hook("aidp", retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05))
    assert isinstance(hook, OCIDataPlatformMlflowHook)
    return hook


def test_aidp_paths_are_platform_and_workspace_scoped(aidp_hook):
    root = f"/20260430/aiDataPlatforms/{PLATFORM_ID}"
    assert aidp_hook.tracking_api == f"{root}/workspaces/{WORKSPACE_KEY}/mlops/api/2.0/mlflow"
    assert aidp_hook.registry_api == f"{root}/mlops/api/2.0/mlflow"


def test_aidp_sends_dh_user_principal(aidp_hook):
    run = new_run(aidp_hook, "exp")
    assert run["info"]["user_id"] == USER_PRINCIPAL


def test_aidp_create_resent_after_a_dropped_answer_is_made_once_thanks_to_the_retry_token(aidp_hook, sandbox):
    experiment_id = aidp_hook.create_experiment("exp")
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", path="runs/create$", count=1))
    run = aidp_hook.create_run(CreateRunRequest(experiment_id=experiment_id), retry_token="task-key-run-1")
    state = sandbox.sandbox.state
    assert len(state.all("mlflow.runs")) == 1  # created once; the resend got the first answer
    assert state.counters["mlflow.retry_token_replays"] == 1
    assert run["info"]["run_id"] == state.all("mlflow.runs")[0]["run_id"]


def test_aidp_unsigned_or_badly_signed_requests_fail_with_oci_code(monkeypatch, aidp_conn, sandbox):
    sandbox.sandbox.state.oci_public_keys.clear()  # the key is no longer known to the service
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_BAD", json.dumps(aidp_conn))
    ok, message = mlflow_hook("aidp_bad", retry=RetryPolicy(max_attempts=1)).test_connection()
    assert not ok and "HTTP 401" in message


def test_aidp_without_workspace_still_reaches_the_registry(monkeypatch, aidp_conn):
    conn = aidp_conn | {"extra": {k: v for k, v in aidp_conn["extra"].items() if k != "workspace_key"}}
    monkeypatch.setenv("AIRFLOW_CONN_AIDP_NOWS", json.dumps(conn))
    hook = mlflow_hook("aidp_nows")
    assert hook.test_connection()[0]
    with pytest.raises(ValueError, match="workspace_key"):
        hook.get_experiment_by_name("exp")


# -- plain MLflow flavour: auth from the connection ------------------------------------------------------
def conn(extra: dict | None = None, host: str = "http://127.0.0.1:5000", **kwargs) -> Connection:
    extra_json = json.dumps(extra) if extra else None
    return Connection(conn_id="m", conn_type="mlflow", host=host, extra=extra_json, **kwargs)


def test_plain_mlflow_auth_types():
    assert MlflowHook.client_from_connection(conn()).auth is None
    basic = MlflowHook.client_from_connection(conn(login="u", password="p", extra={"auth_type": "basic"})).auth
    assert isinstance(basic, httpx.BasicAuth)
    bearer = MlflowHook.client_from_connection(conn(password="s3cr3t-value", extra={"auth_type": "bearer"})).auth
    assert isinstance(bearer, BearerAuth) and "s3cr3t-value" not in repr(bearer)
    with pytest.raises(ValueError, match="auth_type"):
        MlflowHook.client_from_connection(conn(extra={"auth_type": "kerberos"}))
    with pytest.raises(ValueError, match="token"):
        MlflowHook.client_from_connection(conn(extra={"auth_type": "bearer"}))


def test_plain_mlflow_prefixes_and_run_page():
    c = conn(extra={"ui_url": "https://mlflow.example/"})
    assert MlflowHook.api_prefixes(c) == ("/api/2.0/mlflow", "/api/2.0/mlflow")
    client = MlflowHook.client_from_connection(c)
    route = "/#/experiments/{experiment_id}/runs/{run_id}"
    assert MlflowHook.run_page_template(c, client) == "https://mlflow.example" + route
    assert (
        MlflowHook.run_page_template(conn(), MlflowHook.client_from_connection(conn()))
        == "http://127.0.0.1:5000" + route
    )
    template = conn(extra={"ui_url": "https://ui.example/r/{run_id}?e={experiment_id}"})
    assert MlflowHook.run_page_template(template, client) == "https://ui.example/r/{run_id}?e={experiment_id}"


def test_mlflow_hook_builds_the_oci_client_for_an_aidp_connection(aidp_conn):
    """One spec, one trigger: the spec names MlflowHook, which dispatches on the connection type."""
    c = Connection(conn_id="a", conn_type="oci_aidp", host="http://x", extra=json.dumps(aidp_conn["extra"]))
    client = MlflowHook.client_from_connection(c)
    assert client.service == "OCI AI Data Platform"
    assert client.headers["dh-user-principal"] == USER_PRINCIPAL
    assert MlflowHook.api_prefixes(c)[1].startswith("/20260430/aiDataPlatforms/")


def test_a_host_with_a_path_and_a_port_field_reaches_the_server(monkeypatch, mlflow_server):
    """``127.0.0.1/`` plus Port: the port goes into the authority (was ``http://127.0.0.1/:<port>``)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_M_PORT",
        json.dumps({"conn_type": "mlflow", "host": "127.0.0.1/", "port": urlsplit(mlflow_server.url).port}),
    )
    hook = mlflow_hook("m_port")
    assert hook.client.base_url == mlflow_server.url
    ok, message = hook.test_connection()
    assert ok, message
    assert MlflowHook.client_from_connection(conn(host="h/mlflow", port=5505)).base_url == "http://h:5505/mlflow"


def test_credentials_in_the_tracking_uri_are_basic_auth_and_shown_nowhere(monkeypatch, mlflow_server):
    host = mlflow_server.url.replace("://", "://alice:pw%2Fin-host@")
    monkeypatch.setenv("AIRFLOW_CONN_M_USERINFO", json.dumps({"conn_type": "mlflow", "host": host}))
    hook = mlflow_hook("m_userinfo")
    ok, message = hook.test_connection()
    assert ok and message.endswith(f"at {mlflow_server.url}")
    assert isinstance(hook.client.auth, httpx.BasicAuth)
    request = hook.client.auth.auth_flow(httpx.Request("GET", mlflow_server.url)).__next__()
    assert request.headers["authorization"] == httpx.BasicAuth("alice", "pw/in-host")._auth_header
    assert "pw" not in repr(hook.client) and "pw" not in hook.run_url("1", "r")
    with pytest.raises(ValueError, match="holds credentials") as refused:
        MlflowHook.client_from_connection(conn(host=host, login="bob", password="other"))
    assert "pw" not in str(refused.value)


# -- the server in hand: which MLflow's rules apply (issue 29) --------------------------------------------------
def test_the_hook_reads_the_servers_version_once_per_connection(mlflow_target, monkeypatch):
    from airflow_provider_modelreg.http import ServiceClient
    from airflow_provider_modelreg.models.mlflow import AIDP_RULES

    monkeypatch.setattr(MlflowHook, "_server_rules_seen", {})
    paths: list[str] = []
    original = ServiceClient.request

    def spy(self, req):
        paths.append(req.path)
        return original(self, req)

    monkeypatch.setattr(ServiceClient, "request", spy)
    first, second = mlflow_target.hook().server_rules, mlflow_target.hook().server_rules
    if mlflow_target.server is None:
        assert first is second is AIDP_RULES and paths == []  # the seed's rules: nothing to ask
    else:
        assert first == second and first.server == f"MLflow {mlflow_target.server.version}"
        assert first.model_name_path_rule is mlflow_target.server.version.startswith("3.")
        assert paths == ["/version"]  # the second hook on the connection asked nothing


def test_the_sandbox_tells_its_version_like_an_mlflow_server(sandbox, monkeypatch):
    monkeypatch.setattr(MlflowHook, "_server_rules_seen", {})
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN", json.dumps({"conn_type": "mlflow", "host": sandbox.url}))
    assert mlflow_hook("plain").server_rules.server == "MLflow 3.17.2"


def test_a_server_that_does_not_tell_its_version_gets_the_rules_of_2_and_3_together(sandbox, monkeypatch):
    from airflow_provider_modelreg.models.mlflow import MLFLOW_UNKNOWN_RULES

    monkeypatch.setattr(MlflowHook, "_server_rules_seen", {})
    # Under a path the sandbox serves nothing: GET <path>/version answers 404, as a proxy or another product may.
    monkeypatch.setenv(
        "AIRFLOW_CONN_ELSEWHERE", json.dumps({"conn_type": "mlflow", "host": f"{sandbox.url}/elsewhere"})
    )
    hook = mlflow_hook("elsewhere", retry=RetryPolicy(max_attempts=1))
    assert hook.server_rules == MLFLOW_UNKNOWN_RULES
    assert MlflowHook._server_rules_seen == {}  # not remembered: asked again by the next hook


def test_a_server_failing_to_tell_its_version_raises_rather_than_guessing(sandbox, monkeypatch):
    monkeypatch.setattr(MlflowHook, "_server_rules_seen", {})
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN", json.dumps({"conn_type": "mlflow", "host": sandbox.url}))
    sandbox.sandbox.faults.rules.append(FaultRule(status=503, method="GET", path="^/version$", count=None))
    with pytest.raises(ServiceError) as caught:
        _ = mlflow_hook("plain", retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)).server_rules
    assert caught.value.status == 503 and MlflowHook._server_rules_seen == {}
