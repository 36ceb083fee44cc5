"""The sandbox's NeMo Platform Models API v2: real paths, FastAPI-shaped errors, spec timing, paging, auth.

What each answer must be was read from NVIDIA's server code (nemo-platform 0.6.0 ``nmp/core/models``, nemo-helix
0.8.1 ``nhx/core/models``); tests/sandbox/test_nemo_sdk.py lets NVIDIA's SDK judge the same routes.
"""

from __future__ import annotations

import httpx
import pytest
from fixtures.nemo import prepare_nemo_platform

from airflow_provider_modelreg.sandbox.nemo import TINY_LLAMA_CONFIG, _derived_spec
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

MODELS = "/apis/models/v2/workspaces/{ws}/models"
JOBS = "/apis/jobs/v2/workspaces/{ws}/jobs"


@pytest.fixture
def api(sandbox):
    prepare_nemo_platform(sandbox.sandbox.state)
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
    # Derived from the fileset's config.json, as NVIDIA's task does: the architecture, not the fileset's name.
    assert (spec["checkpoint_model_name"], spec["family"], spec["num_layers"]) == ("LlamaForCausalLM", "llama", 2)
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
    assert patched.json()["spec"]["num_layers"] == 3  # late-ckpt's config has one more layer
    assert patched.json()["description"] == "now with weights"


def spec_jobs(api, ws: str = "ws") -> list[dict]:
    return api.get(JOBS.format(ws=ws), params={"filter[source]": "models-system", "page_size": 50}).json()["data"]


def test_after_a_patch_the_old_spec_stays_until_the_new_job_ends(api, sandbox):
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 0
    api.post(path(), json={"name": "mx", "fileset": "ws/ckpt"})
    assert api.get(path(name="mx")).json()["spec"]["num_layers"] == 2

    state.lifecycle_seconds["nemo"] = 3600  # the new analysis runs ...
    patched = api.patch(path(name="mx"), json={"fileset": "ws/late-ckpt"}).json()
    assert patched["fileset"] == "ws/late-ckpt"
    assert patched["spec"]["num_layers"] == 2  # ... and the old spec is what the entity shows
    assert [j["status"] for j in spec_jobs(api)] == ["active", "completed"]

    state.lifecycle_seconds["nemo"] = 0  # ... until it ends
    assert api.get(path(name="mx")).json()["spec"]["num_layers"] == 3


def test_a_patch_starts_a_job_only_for_a_new_fileset_or_an_empty_spec(api, sandbox):
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 0
    api.post(path(), json={"name": "mx", "fileset": "ws/ckpt"})
    api.get(path(name="mx"))
    api.patch(path(name="mx"), json={"description": "same checkpoint, spec filled"})
    api.patch(path(name="mx"), json={"fileset": "ws/ckpt"})  # the same fileset, spec filled: no new job
    assert len(spec_jobs(api)) == 1

    state.outcome_rules.append(OutcomeRule(service="nemo", match="empty"))
    api.post(path(), json={"name": "empty-spec", "fileset": "ws/ckpt"})  # its job fails: spec stays null
    assert api.get(path(name="empty-spec")).json()["spec"] is None
    api.patch(path(name="empty-spec"), json={"description": "try again"})  # fileset kept, spec empty: a new job
    descriptions = [j["description"] for j in spec_jobs(api)]
    assert descriptions.count("Model Spec Analyzer for model ws/empty-spec") == 2
    # a null in a PATCH keeps the old value, as the server's exclude_none update does
    assert api.patch(path(name="mx"), json={"fileset": None}).json()["fileset"] == "ws/ckpt"


def test_a_fileset_that_does_not_exist_is_the_servers_400_on_create_and_patch(api, sandbox):
    missing = api.post(path(), json={"name": "mx", "fileset": "ws/nowhere"})
    assert (missing.status_code, missing.json()) == (
        400,
        {"detail": "Fileset 'ws/nowhere' not found in workspace 'ws'"},
    )
    assert api.post("/apis/entities/v2/workspaces", json={"name": "team"}).status_code == 201
    bare = api.post(path("team"), json={"name": "mx", "fileset": "ckpt"})  # a bare name is in the model's workspace
    assert bare.json() == {"detail": "Fileset 'ckpt' not found in workspace 'team'"}
    assert "nemo" not in sandbox.sandbox.state.resources
    assert api.post(path(), json={"name": "mx", "fileset": "ckpt"}).status_code == 201  # ws/ckpt exists

    patched = api.patch(path(name="mx"), json={"fileset": "other/ckpt"})
    assert (patched.status_code, patched.json()["detail"]) == (
        400,
        "Fileset 'other/ckpt' not found in workspace 'other'",
    )
    assert api.get(path(name="mx")).json()["fileset"] == "ckpt"  # unchanged

    made = api.post("/apis/files/v2/workspaces/other/filesets", json={"name": "ckpt"})
    assert made.status_code == 200 and made.json()["workspace"] == "other"
    assert api.post("/apis/files/v2/workspaces/other/filesets", json={"name": "ckpt"}).status_code == 409
    assert api.patch(path(name="mx"), json={"fileset": "other/ckpt"}).json()["fileset"] == "other/ckpt"


def test_trust_remote_code_without_admin_is_403(api, sandbox):
    state = sandbox.sandbox.state
    state.nemo_tokens = {"user", "admin"}
    state.extra["nemo_admin_tokens"] = {"admin"}
    user, admin = {"authorization": "Bearer user"}, {"authorization": "Bearer admin"}
    body = {"name": "mx", "fileset": "ws/ckpt", "trust_remote_code": True}
    refused = api.post(path(), json=body, headers=user)
    assert (refused.status_code, refused.json()) == (
        403,
        {"detail": "Insufficient permissions to set the trust_remote_code field"},
    )
    assert api.post(path(), json=body | {"trust_remote_code": False}, headers=user).status_code == 201
    assert api.patch(path(name="mx"), json={"trust_remote_code": True}, headers=user).status_code == 403
    assert api.post(path(), json=body | {"name": "my"}, headers=admin).json()["trust_remote_code"] is True
    # the entity trusts remote code: a non-admin's PATCH of its fileset is refused as well
    assert api.patch(path(name="my"), json={"fileset": "ws/late-ckpt"}, headers=user).status_code == 403


def test_the_spec_job_is_on_the_jobs_route_and_an_outcome_rule_makes_it_fail(api, sandbox):
    state = sandbox.sandbox.state
    state.lifecycle_seconds["nemo"] = 0
    state.outcome_rules.append(OutcomeRule(service="nemo", match="broken", reason="no config.json in fileset"))
    api.post(path(), json={"name": "broken-one", "fileset": "ws/ckpt"})
    api.post(path(), json={"name": "good-one", "fileset": "ws/ckpt"})
    api.post(path(), json={"name": "no-checkpoint"})  # no fileset: no job
    jobs = {j["description"]: j for j in spec_jobs(api)}
    assert set(jobs) == {"Model Spec Analyzer for model ws/broken-one", "Model Spec Analyzer for model ws/good-one"}
    broken, good = (
        jobs["Model Spec Analyzer for model ws/broken-one"],
        jobs["Model Spec Analyzer for model ws/good-one"],
    )
    assert (broken["status"], broken["error_details"]) == ("error", {"message": "no config.json in fileset"})
    assert good["status"] == "completed" and "error_details" not in good  # the list leaves nulls out
    assert {j["source"] for j in jobs.values()} == {"models-system"}
    assert api.get(f"{JOBS.format(ws='ws')}/{broken['name']}").json()["status"] == "error"
    assert api.get(path(name="broken-one")).json()["spec"] is None
    listed = api.get(JOBS.format(ws="ws"), params={"page_size": 5000})  # the jobs API sets no maximum
    assert listed.status_code == 200 and listed.json()["pagination"]["page_size"] == 5000
    assert api.get(JOBS.format(ws="ws"), params={"filter[status]": "error"}).json()["data"][0]["name"] == broken["name"]


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


def test_a_malformed_fileset_is_helixs_422(api):
    response = api.post(path(), json={"name": "mx", "fileset": "ws/Ckpt"})
    assert response.status_code == 422
    (item,) = response.json()["detail"]
    assert (item["loc"], item["type"]) == (["body", "fileset"], "string_pattern_mismatch")


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


def test_list_defaults_to_100_a_page_and_the_store_caps_a_page_at_1000(api):
    for i in range(3):
        api.post(path(), json={"name": f"m{i}"})
    assert api.get(path()).json()["pagination"]["page_size"] == 100
    assert api.get(path(), params={"page_size": 1000}).json()["pagination"]["total_results"] == 3
    # The models route does not check page or page_size: the entity store under it refuses, and the route
    # answers that as its 500.
    for params in ({"page_size": 1001}, {"page_size": 0}, {"page": 0}):
        answer = api.get(path(), params=params)
        assert (answer.status_code, answer.json()) == (500, {"detail": "Failed to list model entities"}), params


def test_list_filters_are_the_documented_ones(api, sandbox):
    api.post(path(), json={"name": "with-ckpt", "fileset": "ws/ckpt", "base_model": "meta/llama"})
    api.post(path(), json={"name": "bare", "description": "no checkpoint"})

    def names(**filters):
        params = {f"filter[{k}]": v for k, v in filters.items()}
        return [m["name"] for m in api.get(path(), params=params).json()["data"]]

    assert names(fileset="true") == ["with-ckpt"] and names(fileset="false") == ["bare"]
    # The reference as stored (NVIDIA's server compares the text: a bare name does not match "ws/name").
    assert names(fileset="ws/ckpt") == ["with-ckpt"] and names(fileset="ckpt") == []
    assert names(base_model="meta/llama") == ["with-ckpt"] and names(description="no checkpoint") == ["bare"]
    unknown = api.get(path(), params={"filter[colour]": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("Unknown filter field 'colour'. Valid fields: [")


def test_answers_null_minimum_gpus_and_a_list_leaves_nulls_out(api, sandbox):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 0
    spec = _derived_spec(TINY_LLAMA_CONFIG) | {"minimum_gpus_lora": 2, "minimum_gpus_all_weights": 8}
    api.post(path(), json={"name": "mx", "fileset": "ws/ckpt", "spec": spec, "custom_fields": {"k": None}})
    got = api.get(path(name="mx")).json()
    assert (got["spec"]["minimum_gpus_all_weights"], got["spec"]["minimum_gpus_lora"]) == (None, None)
    assert got["project"] is None and got["spec"]["moe_config"] is None  # a GET keeps its nulls
    (listed,) = api.get(path()).json()["data"]
    assert "project" not in listed and "ownership" not in listed
    assert "minimum_gpus_lora" not in listed["spec"] and "moe_config" not in listed["spec"]
    assert listed["custom_fields"] == {"k": None}  # a free-form dict keeps its values


def test_auth_is_off_by_default_and_bearer_when_tokens_are_set(api, sandbox):
    assert api.get(path()).status_code == 200
    sandbox.sandbox.state.nemo_tokens = {"t1"}
    denied = api.get(path())
    assert (denied.status_code, denied.json()) == (401, {"detail": "Not authenticated"})
    assert api.post(path(), json={"name": "bad name"}, headers={"authorization": "Bearer t2"}).status_code == 401
    assert api.get(path(), headers={"authorization": "Bearer t1"}).status_code == 200
