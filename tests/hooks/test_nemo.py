"""NemoModelsHook against the sandbox: calls, paging, optional Bearer auth, and FastAPI-shaped errors."""

from __future__ import annotations

import json

import pytest

from airflow_provider_modelreg.hooks.nemo import (
    AWAITING_FILESET,
    AWAITING_SPEC,
    MODEL_SPEC_LIFECYCLE,
    SPEC_READY,
    NemoModelsHook,
    models_path,
    spec_state,
)
from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceError
from airflow_provider_modelreg.models.base import InvalidRequest
from airflow_provider_modelreg.models.nemo import CreateModelEntity
from airflow_provider_modelreg.spec import resolve_spec

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)
TOKEN = "nmp-access-token-xyz"


def body(name: str, **fields) -> CreateModelEntity:
    return CreateModelEntity(name=name, **fields)


def hook_for(monkeypatch, conn_id: str, conn: dict) -> NemoModelsHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return NemoModelsHook(conn_id=conn_id, retry=FAST)


# -- lifecycle (no I/O) -----------------------------------------------------------------------------
def test_spec_state_is_ready_only_once_spec_is_filled():
    assert spec_state({"spec": None, "fileset": "ws/ckpt"}) == AWAITING_SPEC
    assert spec_state({"spec": None, "fileset": None}) == AWAITING_FILESET
    assert spec_state({"spec": {"family": "llama"}, "fileset": "ws/ckpt"}) == SPEC_READY
    assert resolve_spec(MODEL_SPEC_LIFECYCLE.key) is MODEL_SPEC_LIFECYCLE
    # Both seen on the jobs API only (the job ended error, or was cancelled).
    assert MODEL_SPEC_LIFECYCLE.failure == frozenset({"SPEC_ANALYSIS_ERROR", "SPEC_ANALYSIS_CANCELLED"})


def test_descriptions_name_workspace_and_entity():
    assert MODEL_SPEC_LIFECYCLE.describe({"workspace": "ws", "name": "m"}) == "NeMo model entity workspace=ws, name=m"


def test_paths_refuse_names_outside_the_rule_before_any_call():
    assert models_path("ws", "m.1") == "/apis/models/v2/workspaces/ws/models/m.1"
    with pytest.raises(InvalidRequest, match=r"name: String should match pattern"):
        models_path("ws", "../other")
    with pytest.raises(InvalidRequest, match=r"workspace: String should match pattern"):
        models_path("a/b")


# -- calls --------------------------------------------------------------------------------------------
def test_create_get_list_delete(nemo_hook, nemo_sent):
    created = nemo_hook.create_model("ws", body("m1", fileset="ws/ckpt", description="d"))
    assert created["workspace"] == "ws" and created["name"] == "m1" and created["spec"] is None
    assert created["id"]
    assert nemo_hook.get_model("ws", "m1")["description"] == "d"
    assert [m["name"] for m in nemo_hook.list_models("ws")] == ["m1"]
    assert nemo_hook.list_models("other-ws") == []
    nemo_hook.delete_model("ws", "m1")
    assert nemo_hook.find_model("ws", "m1") is None
    assert [r["method"] for r in nemo_sent() if r["method"] != "GET"] == ["POST", "DELETE"]


def test_list_follows_pagination_through_every_page(nemo_hook, sandbox):
    for i in range(5):
        nemo_hook.create_model("paged", body(f"m{i}", project="p-odd" if i % 2 else "p-even"))
    nemo_hook.create_model("elsewhere", body("m9"))
    state = sandbox.sandbox.state

    assert [m["name"] for m in nemo_hook.list_models("paged", page_size=2)] == ["m0", "m1", "m2", "m3", "m4"]
    assert state.counters["nemo.list_pages"] == 3  # pages 1, 2 and 3 of total_pages=3

    assert [m["name"] for m in nemo_hook.list_models("paged", page_size=2, sort="-name")][:2] == ["m4", "m3"]
    assert [m["name"] for m in nemo_hook.list_models("paged", project="p-odd")] == ["m1", "m3"]
    assert [m["name"] for m in nemo_hook.list_models("paged", name="m2")] == ["m2"]
    assert len(nemo_hook.list_models("paged", page_size=2, max_pages=1)) == 2


def test_duplicate_name_is_a_409_with_the_platform_message(nemo_hook):
    nemo_hook.create_model("ws", body("dup"))
    with pytest.raises(ServiceError) as caught:
        nemo_hook.create_model("ws", body("dup"))
    assert caught.value.status == 409
    assert caught.value.message == "Model with workspace 'ws' and name 'dup' already exists"
    nemo_hook.create_model("ws2", body("dup"))  # names are unique per workspace only


def test_a_422_from_the_server_surfaces_the_field_path(nemo_hook, nemo_sent):
    # inference_params is passed through by the client model; the platform types it and refuses this.
    request = body("mx", prompt={"inference_params": {"temperature": "hot", "max_tokens": 0}})
    with pytest.raises(ServiceError) as caught:
        nemo_hook.create_model("ws", request)
    err = caught.value
    assert (err.status, err.code) == (422, "ValidationError")
    assert "prompt.inference_params.temperature: Input should be a valid number" in err.message
    assert "prompt.inference_params.max_tokens: Input should be greater than or equal to 1" in err.message
    assert len(nemo_sent("POST")) == 1  # not retried


def test_a_raw_body_the_server_refuses_names_every_field(nemo_hook):
    raw = {"name": "bad name", "backend_format": "GRPC", "model_providers": "not-a-list"}
    with pytest.raises(ServiceError) as caught:
        nemo_hook.request(ApiRequest("POST", models_path("ws"), json=raw, idempotent=False))
    message = caught.value.message
    for path in ("name: String should match pattern", "backend_format: Input should be", "model_providers: "):
        assert path in message


def test_a_fileset_that_does_not_exist_is_a_400_with_the_platforms_detail(nemo_hook):
    with pytest.raises(ServiceError) as caught:
        nemo_hook.request(
            ApiRequest("POST", models_path("ws"), json={"name": "mx", "fileset": "ws/nowhere"}, idempotent=False)
        )
    assert caught.value.status == 400
    assert "Fileset 'ws/nowhere' not found in workspace 'ws'" in caught.value.message


def test_a_missing_entity_is_a_404_for_get_and_none_for_find(nemo_hook):
    with pytest.raises(ServiceError) as caught:
        nemo_hook.get_model("ws", "missing")
    assert caught.value.status == 404
    assert nemo_hook.find_model("ws", "missing") is None


# -- connection and auth ------------------------------------------------------------------------------
def test_no_token_means_no_authorization_header(nemo_hook, nemo_sent):
    nemo_hook.list_models("ws")
    assert [r["authorization"] for r in nemo_sent()] == [False]


def test_bearer_token_when_the_platform_has_auth_on(monkeypatch, sandbox, nemo_conn, nemo_sent):
    sandbox.sandbox.state.nemo_tokens = {TOKEN}
    anonymous = hook_for(monkeypatch, "nemo_anon", nemo_conn)
    with pytest.raises(ServiceError) as caught:
        anonymous.list_models("ws")
    assert (caught.value.status, caught.value.message) == (401, "Not authenticated")

    wrong = hook_for(monkeypatch, "nemo_wrong", nemo_conn | {"password": "wrong-token"})
    ok, message = wrong.test_connection()
    assert not ok and "HTTP 401" in message and "wrong-token" not in message

    authed = hook_for(monkeypatch, "nemo_auth", nemo_conn | {"password": TOKEN})
    assert authed.create_model("ws", body("mx"))["name"] == "mx"
    assert TOKEN not in repr(authed.client) and TOKEN not in repr(authed.client.auth)


def test_test_connection_lists_the_connections_workspace(monkeypatch, nemo_conn, nemo_sent):
    hook = hook_for(monkeypatch, "nemo_ws", nemo_conn | {"extra": json.dumps({"workspace": "team-a"})})
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith("Connected to NVIDIA NeMo Platform at http://")
    assert [r["path"] for r in nemo_sent()] == ["/apis/models/v2/workspaces/team-a/models"]
    assert hook.default_workspace == "team-a"


def test_an_empty_host_is_a_clear_error(monkeypatch):
    hook = hook_for(monkeypatch, "nemo_nohost", {"conn_type": "nemo_platform", "password": TOKEN})
    ok, message = hook.test_connection()
    assert not ok and "host is empty" in message and "NMP_BASE_URL" in message
    with pytest.raises(ValueError, match="host is empty"):
        hook.list_models("ws")


def test_host_with_a_path_prefix_is_kept(monkeypatch, sandbox, nemo_sent):
    # A platform behind a gateway prefix: the hook joins paths under it (the sandbox has none, so 404).
    hook = hook_for(monkeypatch, "nemo_prefix", {"conn_type": "nemo_platform", "host": f"{sandbox.url}/gw"})
    with pytest.raises(ServiceError) as caught:
        hook.list_models("ws")
    assert caught.value.path == "/apis/models/v2/workspaces/ws/models"
    assert caught.value.status == 404 and nemo_sent() == []


def test_test_connection_names_a_workspace_that_does_not_exist(monkeypatch, nemo_conn, nemo_sent):
    """NVIDIA's server answers a models list in a missing workspace with a bare 500 "Failed to list model
    entities" (retried as a server fault, naming nothing); the check reads the workspace first and says which."""
    hook = hook_for(monkeypatch, "nemo_ghost_ws", nemo_conn | {"extra": json.dumps({"workspace": "ghost-ws"})})
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith("workspace 'ghost-ws' does not exist on the NeMo Platform at http://")
    assert "HTTP 404" in message and "POST /apis/entities/v2/workspaces" in message
    assert nemo_sent() == []  # the models list, whose 500 would be retried, was never asked
