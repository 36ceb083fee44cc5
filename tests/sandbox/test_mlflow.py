"""The sandbox's OCI AI Data Platform MLOps flavour: real paths, signatures, retry tokens, OCI errors,
model-version lifecycle and failure outcomes."""

from __future__ import annotations

import json

import httpx
import pytest
from fixtures.mlflow import PLATFORM_ID, WORKSPACE_KEY

from airflow_provider_modelreg.hooks.mlflow import MlflowHook, mlflow_hook
from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceError
from airflow_provider_modelreg.models.mlflow import CreateModelVersionRequest, CreateRegisteredModelRequest
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

WS = f"/20260430/aiDataPlatforms/{PLATFORM_ID}/workspaces/{WORKSPACE_KEY}/mlops/api/2.0/mlflow"
PL = f"/20260430/aiDataPlatforms/{PLATFORM_ID}/mlops/api/2.0/mlflow"


@pytest.fixture
def hook(monkeypatch, aidp_conn) -> MlflowHook:
    monkeypatch.setenv("AIRFLOW_CONN_AIDP", json.dumps(aidp_conn))
    return mlflow_hook("aidp", retry=RetryPolicy(max_attempts=1))


def post(hook: MlflowHook, path: str, body: dict, headers: dict | None = None) -> dict:
    return hook.request(ApiRequest("POST", path, json=body, headers=headers, idempotent=False)).data


def error_of(call) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call()
    return caught.value


def test_unsigned_requests_get_oci_401_with_request_id(sandbox):
    answer = httpx.get(f"{sandbox.url}{WS}/experiments/get-by-name", params={"experiment_name": "x"})
    assert answer.status_code == 401
    assert set(answer.json()) == {"code", "message"} and answer.json()["code"]
    assert answer.headers["opc-request-id"]


def test_answers_carry_request_id_and_etag(hook, sandbox):
    response = hook.request(
        ApiRequest("POST", f"{WS}/experiments/create", json={"name": "e"}, headers={"opc-request-id": "my-req-1"})
    )
    assert response.request_id == "my-req-1" and response.headers["etag"]


def test_errors_use_oci_codes(hook):
    experiment_id = post(hook, f"{WS}/experiments/create", {"name": "e"})["experiment_id"]
    assert error_of(lambda: post(hook, f"{WS}/experiments/create", {"name": "e"})).code == "Conflict"
    missing = error_of(lambda: hook.request(ApiRequest("GET", f"{WS}/runs/get", params={"run_id": "nope"})))
    assert (missing.status, missing.code) == (404, "NotAuthorizedOrNotFound")
    run_id = post(hook, f"{WS}/runs/create", {"experiment_id": experiment_id, "start_time": 1})["run"]["info"]["run_id"]
    bad_status = error_of(lambda: post(hook, f"{WS}/runs/update", {"run_id": run_id, "status": "DONE"}))
    assert (bad_status.status, bad_status.code) == (400, "InvalidParameter")


def test_a_logged_param_cannot_change_and_metric_values_must_be_numbers(hook):
    experiment_id = post(hook, f"{WS}/experiments/create", {"name": "e"})["experiment_id"]
    run_id = post(hook, f"{WS}/runs/create", {"experiment_id": experiment_id, "start_time": 1})["run"]["info"]["run_id"]
    post(hook, f"{WS}/runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]})
    post(hook, f"{WS}/runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "0.1"}]})  # same: fine
    changed = error_of(
        lambda: post(hook, f"{WS}/runs/log-batch", {"run_id": run_id, "params": [{"key": "lr", "value": "9"}]})
    )
    assert "Changing param values is not allowed" in changed.message
    metric = {"key": "m", "value": "abc", "timestamp": 1, "step": 0}
    assert error_of(lambda: post(hook, f"{WS}/runs/log-batch", {"run_id": run_id, "metrics": [metric]})).status == 400


def test_a_retry_token_reused_with_another_body_is_refused(hook, sandbox):
    token = {"opc-retry-token": "t-1"}
    first = post(hook, f"{WS}/experiments/create", {"name": "e1"}, token)
    assert post(hook, f"{WS}/experiments/create", {"name": "e1"}, token) == first  # replayed, not a duplicate
    refused = error_of(lambda: post(hook, f"{WS}/experiments/create", {"name": "e2"}, token))
    assert (refused.status, refused.code) == (409, "InvalidatedRetryToken")
    assert len(sandbox.sandbox.state.all("mlflow.experiments")) == 1


def test_run_search_filters_by_tag_and_pages(hook):
    experiment_id = post(hook, f"{WS}/experiments/create", {"name": "e"})["experiment_id"]
    for i in range(3):
        post(
            hook,
            f"{WS}/runs/create",
            {"experiment_id": experiment_id, "start_time": i, "tags": [{"key": "k", "value": "a" if i else "b"}]},
        )
    found = hook.search_runs([experiment_id], "tags.`k` = 'a'", max_results=10)
    assert len(found) == 2
    first = post(hook, f"{WS}/runs/search", {"experiment_ids": [experiment_id], "max_results": 2})
    assert len(first["runs"]) == 2 and first["next_page_token"]
    assert len(hook.search_runs([experiment_id])) == 3  # follows the page token
    unsupported = error_of(
        lambda: post(hook, f"{WS}/runs/search", {"experiment_ids": [experiment_id], "filter": "metrics.m >> 1"})
    )
    assert unsupported.code == "InvalidParameter"


def register(hook: MlflowHook, name: str) -> dict:
    hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    return hook.create_model_version(CreateModelVersionRequest(name=name, source="oci://bucket/model"))


def test_model_version_stays_pending_for_the_configured_seconds(hook, sandbox):
    sandbox.sandbox.state.lifecycle_seconds["mlflow"] = 600
    version = register(hook, "m")
    assert version["status"] == "PENDING_REGISTRATION"
    sandbox.sandbox.state.lifecycle_seconds["mlflow"] = 0
    assert hook.get_model_version("m", version["version"])["status"] == "READY"


def test_model_version_fails_registration_with_a_message(hook, sandbox):
    sandbox.sandbox.state.lifecycle_seconds["mlflow"] = 0
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="mlflow", match="doomed", reason="bad flavor"))
    version = register(hook, "doomed-model")
    assert (version["status"], version["status_message"]) == ("FAILED_REGISTRATION", "bad flavor")


def test_model_versions_can_be_created_at_workspace_scope_too(hook):
    hook.ensure_registered_model(CreateRegisteredModelRequest(name="m"))
    created = post(hook, f"{WS}/model-versions/create", {"name": "m", "source": "oci://b/m"})["model_version"]
    assert hook.get_model_version("m", created["version"])["source"] == "oci://b/m"
    missing = error_of(lambda: post(hook, f"{PL}/model-versions/create", {"name": "nope", "source": "s"}))
    assert missing.code == "NotAuthorizedOrNotFound"


def test_model_version_limits_are_enforced_server_side(hook):
    hook.ensure_registered_model(CreateRegisteredModelRequest(name="m"))
    refused = error_of(lambda: post(hook, f"{PL}/model-versions/create", {"name": "m", "source": "s" * 501}))
    assert (refused.status, refused.code) == (400, "InvalidParameter")


# -- the open-source MLflow flavour ---------------------------------------------------------------------
OSS = "/api/2.0/mlflow"


def oss(sandbox, method: str, suffix: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{sandbox.url}{OSS}/{suffix}", timeout=10, **kwargs)


def test_open_source_flavour_answers_unsigned_with_mlflow_error_shape(sandbox):
    assert oss(sandbox, "POST", "experiments/create", json={"name": "e"}).json() == {"experiment_id": "1"}
    duplicate = oss(sandbox, "POST", "experiments/create", json={"name": "e"})
    assert duplicate.status_code == 400 and duplicate.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert set(duplicate.json()) == {"error_code", "message"}
    missing = oss(sandbox, "GET", "runs/get", params={"run_id": "nope"})
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")


def test_open_source_flavour_keeps_its_resources_apart_from_the_platforms(sandbox, hook):
    oss(sandbox, "POST", "experiments/create", json={"name": "shared-name"})
    post(hook, f"{WS}/experiments/create", {"name": "shared-name"})  # no conflict: another service
    assert len(sandbox.sandbox.state.all("mlflow.experiments")) == 2


@pytest.mark.parametrize("key", ["bad name!", "a b/../c", "/abs", "x" * 251, ""])
def test_a_key_against_mlflows_rule_is_refused_and_nothing_is_logged(sandbox, key):
    eid = oss(sandbox, "POST", "experiments/create", json={"name": "e"}).json()["experiment_id"]
    run_id = oss(sandbox, "POST", "runs/create", json={"experiment_id": eid, "start_time": 1}).json()["run"]["info"][
        "run_id"
    ]
    batch = {"run_id": run_id, "params": [{"key": "ok", "value": "1"}, {"key": key, "value": "v"}]}
    refused = oss(sandbox, "POST", "runs/log-batch", json=batch)
    assert (refused.status_code, refused.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    for suffix, body in [
        ("runs/log-metric", {"key": key, "value": 1.0, "timestamp": 1, "step": 0}),
        ("runs/log-parameter", {"key": key, "value": "v"}),
        ("runs/set-tag", {"key": key, "value": "v"}),
    ]:
        assert oss(sandbox, "POST", suffix, json={"run_id": run_id, **body}).status_code == 400
    data = oss(sandbox, "GET", "runs/get", params={"run_id": run_id}).json()["run"]["data"]
    assert data["params"] == [] and data["metrics"] == [] and set(t["key"] for t in data["tags"]) == {"mlflow.runName"}


def test_open_source_flavour_ignores_an_unknown_run_status_as_the_real_server_does(sandbox):
    eid = oss(sandbox, "POST", "experiments/create", json={"name": "e"}).json()["experiment_id"]
    run_id = oss(sandbox, "POST", "runs/create", json={"experiment_id": eid, "start_time": 1}).json()["run"]["info"][
        "run_id"
    ]
    answer = oss(sandbox, "POST", "runs/update", json={"run_id": run_id, "status": "DONE"})
    assert answer.status_code == 200 and answer.json()["run_info"]["status"] == "RUNNING"


def test_run_search_grammar_over_metrics_params_tags_and_attributes(hook):
    eid = post(hook, f"{WS}/experiments/create", {"name": "e"})["experiment_id"]
    for i, (score, lr, kind) in enumerate([(0.5, "0.1", "alpha"), (0.9, "0.2", "beta"), (0.7, "0.3", "Alpha-2")]):
        run_id = post(hook, f"{WS}/runs/create", {"experiment_id": eid, "start_time": 100 + i, "run_name": f"r{i}"})[
            "run"
        ]["info"]["run_id"]
        post(
            hook,
            f"{WS}/runs/log-batch",
            {
                "run_id": run_id,
                "metrics": [{"key": "score", "value": score, "timestamp": 1, "step": 0}],
                "params": [{"key": "lr", "value": lr}],
                "tags": [{"key": "kind", "value": kind}],
            },
        )

    def names(filter_string: str = "", order_by: list[str] | None = None) -> list[str]:
        return [r["info"]["run_name"] for r in hook.search_runs([eid], filter_string or None, order_by=order_by)]

    assert names() == ["r2", "r1", "r0"]  # newest start first
    assert names("metrics.score > 0.6") == ["r2", "r1"]
    assert names("metrics.score >= 0.5 and params.lr = '0.1'") == ["r0"]
    assert names("params.lr != '0.2'") == ["r2", "r0"]
    assert names("tags.kind LIKE 'al%'") == ["r0"]
    assert names("tags.kind ILIKE 'al%'") == ["r2", "r0"]
    assert names("attributes.run_name = 'r1'") == ["r1"]
    assert names("attributes.start_time > 100") == ["r2", "r1"]
    assert names(order_by=["metrics.score DESC"]) == ["r1", "r2", "r0"]
    assert names(order_by=["tags.kind DESC"]) == ["r1", "r0", "r2"]  # byte order: 'A' < 'a'
    for bad in ("metrics.score >> 1", "nothing.score > 1", "params.lr > 1", "metrics.score = 'x'"):
        assert error_of(lambda bad=bad: names(bad)).code == "InvalidParameter"


def test_a_dag_on_the_printed_mlflow_default_connection_runs_offline(sandbox, run_dag):
    import datetime as dt

    from airflow.sdk import DAG

    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
    from airflow_provider_modelreg.sandbox.keys import sandbox_connections

    conn = sandbox_connections(sandbox.url, "/nonexistent.pem")["mlflow_default"]
    with DAG("offline_mlflow", schedule=None, start_date=dt.datetime(2024, 1, 1), default_args={"retries": 0}) as dag:
        MlflowCreateRunOperator(
            task_id="log",
            conn_id="mlflow_default",
            experiment_name="offline",
            run_params={"lr": 0.1},
            metrics={"f1": 0.9},
        ) >> MlflowCreateModelVersionOperator(
            task_id="register", conn_id="mlflow_default", name="offline-model", source="s3://models/offline"
        )
    assert run_dag(dag, {"mlflow_default": conn}).state == "success"
    (run,) = sandbox.sandbox.state.all("mlflow.runs")
    assert (run["status"], run["_params"], run["_scope"]) == ("FINISHED", {"lr": "0.1"}, ("mlflow", "", ""))
    (version,) = sandbox.sandbox.state.all("mlflow.model_versions")
    assert (version["name"], version["_flavour"]) == ("offline-model", "mlflow")
