"""The sandbox's OCI Vision API over plain httpx: signatures, retry tokens, lifecycle, errors, request ids."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fixtures.oci import KEY_ID
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_DATASET, VISION_PROJECT, training_ended
from fixtures.waiting import wait_until

from airflow_provider_modelreg.auth.oci import OCISigner
from airflow_provider_modelreg.sandbox.oci_vision import NOT_FOUND_SECONDS
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

BODY: dict[str, Any] = {
    "compartmentId": VISION_COMPARTMENT,
    "projectId": VISION_PROJECT,
    "modelType": "IMAGE_CLASSIFICATION",
    "trainingDataset": {"datasetType": "DATA_SCIENCE_LABELING", "datasetId": VISION_DATASET},
    "displayName": "pets",
}


@pytest.fixture
def api(sandbox, oci_key_registered, oci_private_key):
    with httpx.Client(base_url=f"{sandbox.url}/20220125", auth=OCISigner(KEY_ID, oci_private_key)) as client:
        yield client


def post_model(api: httpx.Client, body: dict[str, Any] = BODY, token: str | None = None) -> httpx.Response:
    headers = {"opc-retry-token": token} if token else {}
    return api.post("/models", content=json.dumps(body).encode(), headers=headers)


def assert_not_authenticated(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "NotAuthenticated"
    assert reason in body["message"]
    assert response.headers["opc-request-id"]


def test_unsigned_requests_are_refused_in_ocis_shape(sandbox, oci_key_registered):
    response = httpx.get(f"{sandbox.url}/20220125/models", params={"compartmentId": VISION_COMPARTMENT})
    assert_not_authenticated(response, "missing Authorization header")


def test_a_key_the_sandbox_does_not_know_is_refused(sandbox, oci_key_registered):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = httpx.post(
        f"{sandbox.url}/20220125/models",
        json=BODY,
        auth=OCISigner("ocid1.tenancy.oc1..x/ocid1.user.oc1..y/aa:bb", other),
    )
    assert_not_authenticated(response, "unknown keyId")
    assert sandbox.sandbox.state.all("oci_vision") == []


def test_a_clock_skew_over_five_minutes_is_refused(api):
    stale = email.utils.formatdate(time.time() - 6 * 60, usegmt=True)
    response = api.get("/models", params={"compartmentId": VISION_COMPARTMENT}, headers={"date": stale})
    assert_not_authenticated(response, "more than 300 seconds away")
    fresh = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert api.get("/models", params={"compartmentId": VISION_COMPARTMENT}, headers={"date": fresh}).status_code == 200


def test_a_post_signed_without_its_body_headers_is_refused(sandbox, oci_key_registered, oci_private_key):
    body = json.dumps(BODY).encode()
    url = httpx.URL(f"{sandbox.url}/20220125/models")
    # Signed the way a GET is signed: content-length, content-type and x-content-sha256 left out.
    signed = OCISigner(KEY_ID, oci_private_key).sign_headers(
        "GET", url.raw_path.decode(), url.netloc.decode(), {"content-type": "application/json"}, body
    )
    response = httpx.post(url, content=body, headers={"content-type": "application/json", **signed})
    assert_not_authenticated(response, "required header 'content-length' is not signed")


def test_every_answer_carries_an_opc_request_id_and_echoes_the_callers(api):
    answers = [
        post_model(api),
        api.get("/models/ocid1.aivisionmodel.oc1.iad.nothere"),
        api.post("/models", content=b"{}"),
        api.get("/workRequests/ocid1.aivisionworkrequest.oc1.iad.nothere/errors"),
        httpx.get(str(api.base_url).rstrip("/") + "/models"),
    ]
    assert [a.status_code for a in answers] == [201, 404, 400, 404, 401]
    assert all(a.headers.get("opc-request-id") for a in answers)
    assert api.get("/models/x", headers={"opc-request-id": "CALLER-1"}).headers["opc-request-id"] == "CALLER-1"


def test_bad_bodies_get_400_invalid_parameter_naming_the_fields(api, sandbox):
    bad = {"compartmentId": VISION_COMPARTMENT, "modelType": "FACES", "trainingDataset": {"datasetType": "HTTP"}}
    response = post_model(api, bad)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidParameter"
    for field in ("projectId", "modelType", "trainingDataset.datasetType"):
        assert field in body["message"]
    assert sandbox.sandbox.state.all("oci_vision") == []


def test_a_model_trains_from_creating_to_active_with_metrics_and_a_work_request(api, sandbox):
    created = post_model(api)
    assert created.status_code == 201
    model = created.json()
    assert model["lifecycleState"] == "CREATING"
    assert model["id"].startswith("ocid1.aivisionmodel.")
    assert "precision" not in model
    work_request_id = created.headers["opc-work-request-id"]
    assert created.headers["etag"]
    assert api.get(f"/workRequests/{work_request_id}").json()["status"] in {"ACCEPTED", "IN_PROGRESS"}

    active = wait_until(lambda: api.get(f"/models/{model['id']}").json(), training_ended, what="the training's end")
    assert active["lifecycleState"] == "ACTIVE"
    assert 0 < active["recall"] <= 1 and 0 < active["precision"] <= 1 and 0 < active["averagePrecision"] <= 1
    assert 0 < active["testImageCount"] < active["totalImageCount"]
    assert active["confidenceThreshold"] == 0.5
    assert active["trainedDurationInHours"] > 0
    assert json.loads(active["metrics"])["labelMetricsReport"]
    work_request = api.get(f"/workRequests/{work_request_id}").json()
    assert work_request["status"] == "SUCCEEDED" and work_request["percentComplete"] == 100.0
    assert work_request["resources"][0]["identifier"] == model["id"]
    assert api.get(f"/workRequests/{work_request_id}/errors").json() == {"items": []}
    logs = api.get(f"/workRequests/{work_request_id}/logs").json()["items"]
    assert logs[-1]["message"] == "Model training completed"


def test_an_outcome_rule_makes_training_fail_with_a_reason_and_work_request_errors(api, sandbox):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="oci_vision", match="pets", reason="too few images"))
    created = post_model(api)
    model = wait_until(
        lambda: api.get(f"/models/{created.json()['id']}").json(), training_ended, what="the training's end"
    )
    assert model["lifecycleState"] == "FAILED"
    assert model["lifecycleDetails"] == "too few images"
    assert "precision" not in model
    errors = api.get(f"/workRequests/{created.headers['opc-work-request-id']}/errors").json()["items"]
    assert [e["code"] for e in errors] == ["ModelTrainingFailed"]
    assert "too few images" in errors[0]["message"]


def test_a_retry_token_returns_the_first_model_and_refuses_another_body(api, sandbox):
    first = post_model(api, token="tok-1")
    again = post_model(api, token="tok-1")
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["opc-work-request-id"] == first.headers["opc-work-request-id"]
    other = post_model(api, BODY | {"displayName": "cats"}, token="tok-1")
    assert other.status_code == 409
    assert other.json()["code"] == "InvalidatedRetryToken"
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1
    assert post_model(api, token="tok-2").json()["id"] != first.json()["id"]


def test_a_new_model_can_answer_404_for_a_while_when_configured(api, sandbox):
    model_id = post_model(api).json()["id"]
    assert api.get(f"/models/{model_id}").status_code == 200  # off by default
    sandbox.sandbox.state.extra[NOT_FOUND_SECONDS] = 0.5
    hidden = post_model(api).json()["id"]
    missing = api.get(f"/models/{hidden}")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotAuthorizedOrNotFound"
    wait_until(
        lambda: api.get(f"/models/{hidden}").status_code,
        lambda status: status != 404,
        what="the model's 404 window to pass",
    )
    assert api.get(f"/models/{hidden}").status_code == 200


def test_lists_are_filtered_and_paged_with_opc_next_page(api):
    ids = {post_model(api, BODY | {"displayName": f"m{i}"}).json()["id"] for i in range(3)}
    first = api.get("/models", params={"compartmentId": VISION_COMPARTMENT, "limit": 2})
    assert len(first.json()["items"]) == 2
    second = api.get(
        "/models", params={"compartmentId": VISION_COMPARTMENT, "limit": 2, "page": first.headers["opc-next-page"]}
    )
    assert "opc-next-page" not in second.headers
    assert {m["id"] for m in first.json()["items"] + second.json()["items"]} == ids
    named = api.get("/models", params={"compartmentId": VISION_COMPARTMENT, "displayName": "m1"}).json()["items"]
    assert [m["displayName"] for m in named] == ["m1"]
    assert api.get("/models", params={"compartmentId": "ocid1.compartment.oc1..other"}).json() == {"items": []}
    assert api.get("/projects", params={"compartmentId": VISION_COMPARTMENT}).json()["items"][0]["lifecycleState"]
