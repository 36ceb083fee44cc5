"""The sandbox's NeMo Platform Models API v2: real paths, FastAPI-shaped errors, spec timing, paging, auth."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

MODELS = "/apis/models/v2/workspaces/{ws}/models"


@pytest.fixture
def api(sandbox):
    with httpx.Client(base_url=sandbox.url) as client:
        yield client


def path(ws: str = "ws", name: str | None = None) -> str:
    return MODELS.format(ws=ws) + (f"/{name}" if name else "")


def test_create_answers_201_with_the_model_entity(api):
    response = api.post(path(), json={"name": "mx", "fileset": "ws/ckpt", "custom_fields": {"k": "v"}})
    assert response.status_code == 201
    entity = response.json()
    assert entity["id"].startswith("model-") and entity["workspace"] == "ws" and entity["name"] == "mx"
    expected_fields = {
        "created_at", "updated_at", "project", "description", "spec", "finetuning_type", "fileset",
        "trust_remote_code", "base_model", "api_endpoint", "backend_format", "adapters", "prompt",
        "custom_fields", "ownership", "model_providers",
    }  # fmt: skip
    assert expected_fields <= set(entity)
    assert (entity["trust_remote_code"], entity["model_providers"], entity["custom_fields"]) == (False, [], {"k": "v"})
    assert not any(key.startswith("_") for key in entity)
    assert api.get(path(name="mx")).json() == entity


def test_spec_is_filled_after_the_configured_seconds_only_with_a_fileset(api, sandbox):
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 3600
    api.post(path(), json={"name": "slow", "fileset": "ws/ckpt"})
    assert api.get(path(name="slow")).json()["spec"] is None

    state.lifecycle_seconds["nemo"] = 0
    spec = api.get(path(name="slow")).json()["spec"]
    assert spec["checkpoint_model_name"] == "ckpt" and spec["family"] == "llama"
    api.post(path(), json={"name": "no-fileset"})
    assert api.get(path(name="no-fileset")).json()["spec"] is None

    state.outcome_rules.append(OutcomeRule(service="nemo", match="broken"))
    api.post(path(), json={"name": "broken-ckpt", "fileset": "ws/ckpt"})
    assert api.get(path(name="broken-ckpt")).json()["spec"] is None  # analysis failed: never filled


def test_patching_a_fileset_starts_the_spec_analysis(api, sandbox):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 0
    api.post(path(), json={"name": "mx"})
    patched = api.patch(path(name="mx"), json={"fileset": "ws/late-ckpt", "description": "now with weights"})
    assert patched.status_code == 200
    assert patched.json()["spec"]["checkpoint_model_name"] == "late-ckpt"
    assert patched.json()["description"] == "now with weights"


def test_a_duplicate_name_is_409_with_the_platform_message(api):
    api.post(path(), json={"name": "mx"})
    response = api.post(path(), json={"name": "mx"})
    assert response.status_code == 409
    assert response.json() == {"detail": "Model with workspace 'ws' and name 'mx' already exists"}
    assert api.post(path("other"), json={"name": "mx"}).status_code == 201


def test_a_bad_body_is_fastapis_422_with_locations(api, sandbox):
    response = api.post(path(), json={"name": "bad name", "description": "d" * 1001, "backend_format": "X"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [item["loc"] for item in detail] == [["body", "name"], ["body", "description"], ["body", "backend_format"]]
    assert detail[0]["type"] == "string_pattern_mismatch" and detail[0]["msg"].startswith("String should match")
    assert "nemo" not in sandbox.sandbox.state.resources  # nothing stored
    # ... but the body was recorded, so tests can tell what reached the server
    assert sandbox.sandbox.state.extra["nemo_requests"][-1]["body"]["name"] == "bad name"


def test_a_malformed_fileset_is_400(api):
    response = api.post(path(), json={"name": "mx", "fileset": "ws/Ckpt"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid fileset 'ws/Ckpt'")


def test_get_and_delete(api):
    assert api.get(path(name="mx")).status_code == 404
    api.post(path(), json={"name": "mx"})
    deleted = api.delete(path(name="mx"))
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api.delete(path(name="mx")).status_code == 404
    assert api.get(path(name="mx")).json() == {"detail": "Model with workspace 'ws' and name 'mx' not found"}


def test_list_pages_sorts_and_filters(api):
    for i in range(7):
        api.post(path(), json={"name": f"m{i}", "project": "odd" if i % 2 else "even"})
    api.post(path("other"), json={"name": "x"})

    last = api.get(path(), params={"page": 3, "page_size": 3}).json()
    assert [m["name"] for m in last["data"]] == ["m6"]
    assert last["pagination"] == {
        "page": 3,
        "page_size": 3,
        "current_page_size": 1,
        "total_pages": 3,
        "total_results": 7,
    }
    by_name_desc = api.get(path(), params={"sort": "-name", "page_size": 2}).json()
    assert [m["name"] for m in by_name_desc["data"]] == ["m6", "m5"]
    odd = api.get(path(), params={"filter[project]": "odd"}).json()
    assert [m["name"] for m in odd["data"]] == ["m1", "m3", "m5"]
    assert api.get(path(), params={"filter[name]": "m2"}).json()["pagination"]["total_results"] == 1
    assert api.get(path(), params={"page": 0}).status_code == 422


def test_auth_is_off_by_default_and_bearer_when_tokens_are_set(api, sandbox):
    assert api.get(path()).status_code == 200
    sandbox.sandbox.state.nemo_tokens = {"t1"}
    denied = api.get(path())
    assert (denied.status_code, denied.json()) == (401, {"detail": "Not authenticated"})
    assert api.post(path(), json={"name": "bad name"}, headers={"authorization": "Bearer t2"}).status_code == 401
    assert api.get(path(), headers={"authorization": "Bearer t1"}).status_code == 200
