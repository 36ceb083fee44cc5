"""The sandbox's OCI Vision as Oracle's own client sees it: the ``oci`` SDK's ``AIServiceVisionClient``
drives create, read, update, list with paging and sorting, work requests, waits and delete, and every
answer's JSON keys are ones the SDK model reads (none dropped) and carry every key it marks required."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fixtures.oci import FINGERPRINT, KEY_ID, TENANCY, USER
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_DATASET, VISION_PROJECT

from airflow_provider_modelreg.auth.oci import OCISigner

oci = pytest.importorskip("oci")
models = oci.ai_vision.models

pytestmark = pytest.mark.integration


@pytest.fixture
def vision(sandbox, oci_key_registered, oci_private_pem):
    sandbox.sandbox.state.lifecycle_seconds["oci_vision"] = 0.3
    signer = oci.signer.Signer(TENANCY, USER, FINGERPRINT, None, private_key_content=oci_private_pem)
    config = {"region": "us-ashburn-1", "tenancy": TENANCY, "user": USER, "fingerprint": FINGERPRINT}
    config["key_content"] = oci_private_pem
    client = oci.ai_vision.AIServiceVisionClient(
        config, signer=signer, service_endpoint=sandbox.url, retry_strategy=oci.retry.NoneRetryStrategy()
    )
    return client


@pytest.fixture
def raw(sandbox, oci_key_registered, oci_private_key):
    with httpx.Client(base_url=f"{sandbox.url}/20220125", auth=OCISigner(KEY_ID, oci_private_key)) as client:
        yield client


def create(vision: Any, name: str) -> Any:
    details = models.CreateModelDetails(
        compartment_id=VISION_COMPARTMENT,
        project_id=VISION_PROJECT,
        model_type="IMAGE_CLASSIFICATION",
        display_name=name,
        training_dataset=models.DataScienceLabelingDataset(
            dataset_type="DATA_SCIENCE_LABELING", dataset_id=VISION_DATASET
        ),
    )
    return vision.create_model(details)


def assert_keys_match(payload: dict[str, Any], model_cls: type, path: str = "") -> None:
    """Every key is one the SDK model maps, recursively, so nothing is silently dropped on deserialising."""
    instance = model_cls()
    known = set(instance.attribute_map.values())
    unknown = set(payload) - known
    assert not unknown, f"{path or model_cls.__name__}: keys the SDK drops: {sorted(unknown)}"
    # And none the model marks required is missing (the SDK's docstrings say "[Required]").
    lacking = [
        key
        for attr, key in instance.attribute_map.items()
        if "[Required]" in (getattr(model_cls, attr).__doc__ or "") and payload.get(key) is None
    ]
    assert not lacking, f"{path or model_cls.__name__}: required keys our answer lacks: {lacking}"
    for attr, key in instance.attribute_map.items():
        kind = instance.swagger_types[attr]
        value = payload.get(key)
        if value is None:
            continue
        if kind.startswith("list[") and kind[5:-1] in dir(models):
            for i, item in enumerate(value):
                assert_keys_match(item, getattr(models, kind[5:-1]), f"{path}{key}[{i}].")
        elif kind in dir(models) and isinstance(value, dict):
            sub = getattr(models, kind)
            if hasattr(sub, "get_subtype"):
                sub = getattr(models, sub.get_subtype(value), sub)
            assert_keys_match(value, sub, f"{path}{key}.")


def test_the_sdk_drives_a_model_through_its_life(vision, raw):
    created = create(vision, "conformance")
    assert created.status == 201 and created.headers["opc-work-request-id"]
    model = created.data
    assert model.lifecycle_state == "CREATING" and model.display_name == "conformance"

    done = oci.wait_until(
        vision,
        vision.get_work_request(created.headers["opc-work-request-id"]),
        "status",
        "SUCCEEDED",
        max_interval_seconds=1,
        max_wait_seconds=30,
    )
    assert done.data.percent_complete == 100.0 and done.data.resources[0].identifier == model.id
    active = oci.wait_until(
        vision, vision.get_model(model.id), "lifecycle_state", "ACTIVE", max_interval_seconds=1, max_wait_seconds=30
    )
    assert active.data.precision and active.data.total_image_count

    raw_model = raw.get(f"/models/{model.id}").json()
    assert_keys_match(raw_model, models.Model)
    assert_keys_match(raw.get(f"/workRequests/{created.headers['opc-work-request-id']}").json(), models.WorkRequest)

    updated = vision.update_model(
        model.id,
        models.UpdateModelDetails(display_name="renamed", freeform_tags={"team": "vision"}),
        if_match=active.headers["etag"],
    )
    assert updated.status == 202 and updated.data is None
    update_wr = vision.get_work_request(updated.headers["opc-work-request-id"]).data
    assert (update_wr.operation_type, update_wr.status) == ("UPDATE_MODEL", "SUCCEEDED")
    after = vision.get_model(model.id).data
    assert (after.display_name, after.freeform_tags) == ("renamed", {"team": "vision"})

    stale = active.headers["etag"]
    with pytest.raises(oci.exceptions.ServiceError) as refused:
        vision.delete_model(model.id, if_match=stale)
    assert (refused.value.status, refused.value.code) == (412, "PreconditionFailed")

    deleted = vision.delete_model(model.id)
    assert deleted.status == 202
    gone = oci.wait_until(vision, vision.get_model(model.id), "lifecycle_state", "DELETED", max_wait_seconds=5)
    assert gone.data.lifecycle_state == "DELETED"

    listed = vision.list_work_requests(compartment_id=VISION_COMPARTMENT).data.items
    assert {w.operation_type for w in listed} == {"CREATE_MODEL", "UPDATE_MODEL", "DELETE_MODEL"}
    for item in raw.get("/workRequests", params={"compartmentId": VISION_COMPARTMENT}).json()["items"]:
        assert_keys_match(item, models.WorkRequestSummary)


def test_list_models_pages_and_sorts_as_the_sdk_asks(vision, raw):
    names = ["b-model", "a-model", "c-model"]
    ids = [create(vision, n).data.id for n in names]
    pages = oci.pagination.list_call_get_all_results(
        vision.list_models, compartment_id=VISION_COMPARTMENT, limit=1, sort_by="displayName", sort_order="ASC"
    )
    assert [m.display_name for m in pages.data] == ["a-model", "b-model", "c-model"]
    newest_first = vision.list_models(compartment_id=VISION_COMPARTMENT).data.items
    assert [m.id for m in newest_first] == ids[::-1] or len({m.time_created for m in newest_first}) < 3
    by_name_desc = vision.list_models(compartment_id=VISION_COMPARTMENT, sort_by="displayName", sort_order="DESC")
    assert [m.display_name for m in by_name_desc.data.items] == ["c-model", "b-model", "a-model"]
    first = raw.get("/models", params={"compartmentId": VISION_COMPARTMENT, "limit": 2})
    assert first.headers["opc-next-page"]
    for item in first.json()["items"]:
        assert_keys_match(item, models.ModelSummary)
    bad = raw.get("/models", params={"compartmentId": VISION_COMPARTMENT, "sortBy": "size"})
    assert bad.status_code == 400 and "sortBy" in bad.json()["message"]


def test_unknown_routes_and_methods_answer_in_ocis_shape(raw):
    missing = raw.get("/nothingHere")
    assert missing.status_code == 404 and set(missing.json()) == {"code", "message"}
    assert missing.headers["opc-request-id"]
    wrong = raw.patch("/models", content=json.dumps({}).encode())
    assert wrong.status_code == 405 and wrong.json()["code"] == "MethodNotAllowed"
