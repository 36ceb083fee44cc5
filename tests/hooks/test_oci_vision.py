"""OCIVisionHook against the sandbox: signed calls, paging, retry tokens, tampering, failures."""

from __future__ import annotations

import json

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_FAST_RETRY, training_ended, vision_arguments
from fixtures.waiting import wait_until

from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE, OCIVisionHook
from airflow_provider_modelreg.http import ApiRequest, ServiceError
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.oci_vision import CreateModelDetails
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.oci_vision import NOT_FOUND_SECONDS
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.spec import Waiter

pytestmark = pytest.mark.integration


def details(**overrides) -> CreateModelDetails:
    return validate_request(CreateModelDetails, vision_arguments(**overrides))


def pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_create_get_and_list_models_and_the_work_request(oci_vision_hook):
    created = oci_vision_hook.create_model(details(), retry_token="t-1")
    model = created.model
    assert model["lifecycleState"] == "CREATING"
    assert model["displayName"] == "defects" and model["modelType"] == "OBJECT_DETECTION"
    assert model["freeformTags"] == {"team": "vision"} and model["isQuickMode"] is True
    assert created.work_request_id and created.request_id
    assert oci_vision_hook.get_model(model["id"])["id"] == model["id"]
    listed = oci_vision_hook.list_models(compartment_id=VISION_COMPARTMENT, display_name="defects")
    assert [m["id"] for m in listed] == [model["id"]]
    work_request = oci_vision_hook.get_work_request(created.work_request_id)
    assert work_request["operationType"] == "CREATE_MODEL"
    assert work_request["resources"][0]["identifier"] == model["id"]
    assert oci_vision_hook.list_work_request_errors(created.work_request_id) == []
    assert oci_vision_hook.list_work_request_logs(created.work_request_id)[0]["message"]


def test_list_models_follows_opc_next_page(oci_vision_hook, sandbox):
    ids = {oci_vision_hook.create_model(details(display_name=f"m{i}")).model["id"] for i in range(5)}
    assert {m["id"] for m in oci_vision_hook.list_models(compartment_id=VISION_COMPARTMENT, limit=2)} == ids


def test_the_same_retry_token_gets_the_first_model_and_another_body_409(oci_vision_hook, sandbox):
    first = oci_vision_hook.create_model(details(), retry_token="task-key")
    again = oci_vision_hook.create_model(details(), retry_token="task-key")
    assert again.model["id"] == first.model["id"]
    assert again.work_request_id == first.work_request_id
    with pytest.raises(ServiceError) as info:
        oci_vision_hook.create_model(details(display_name="other"), retry_token="task-key")
    assert info.value.status == 409 and info.value.code == "InvalidatedRetryToken"
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1


def test_a_create_whose_answer_is_lost_is_resent_with_its_token_and_makes_one_model(oci_vision_hook, sandbox):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", path="/20220125/models", count=1))
    created = oci_vision_hook.create_model(details(), retry_token="lost-answer")
    models = sandbox.sandbox.state.all("oci_vision")
    assert [m["id"] for m in models] == [created.model["id"]]
    assert sandbox.sandbox.state.counters["oci_vision.retry_token_replays"] == 1


def test_a_create_without_token_is_never_resent(oci_vision_hook, sandbox):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", path="/20220125/models", count=1))
    with pytest.raises(ServiceError) as info:
        oci_vision_hook.create_model(details())
    assert info.value.status is None  # the connection died: ambiguous, so not retried
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1


def test_a_read_right_after_create_retries_the_eventual_consistency_404(oci_vision_hook, sandbox):
    sandbox.sandbox.state.extra[NOT_FOUND_SECONDS] = 0.3
    model_id = oci_vision_hook.create_model(details()).model["id"]
    with pytest.raises(ServiceError) as info:  # a plain read sees the 404 ...
        oci_vision_hook.request(ApiRequest("GET", f"/20220125/models/{model_id}"))
    assert info.value.status == 404 and info.value.code == "NotAuthorizedOrNotFound"
    assert oci_vision_hook.get_model(model_id)["id"] == model_id  # ... the lifecycle read waits it out


def test_training_metrics_once_active(oci_vision_hook):
    model_id = oci_vision_hook.create_model(details()).model["id"]
    model = wait_until(lambda: oci_vision_hook.get_model(model_id), training_ended, what="the training's end")
    assert model["lifecycleState"] == "ACTIVE"
    for metric in ("precision", "recall", "averagePrecision", "confidenceThreshold"):
        assert 0 < model[metric] <= 1, metric
    assert model["testImageCount"] > 0 and model["totalImageCount"] > model["testImageCount"]
    assert model["trainedDurationInHours"] <= 1.5  # capped by maxTrainingDurationInHours
    assert isinstance(model["metrics"], str)


def test_a_failed_training_has_lifecycle_details_and_work_request_errors(oci_vision_hook, sandbox):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="oci_vision", match="doomed", reason="no labels"))
    created = oci_vision_hook.create_model(details(display_name="doomed"))
    model = wait_until(
        lambda: oci_vision_hook.get_model(created.model["id"]), training_ended, what="the training's end"
    )
    assert (model["lifecycleState"], model["lifecycleDetails"]) == ("FAILED", "no labels")
    assert oci_vision_hook.get_work_request(created.work_request_id)["status"] == "FAILED"
    errors = oci_vision_hook.list_work_request_errors(created.work_request_id)
    assert errors[0]["code"] == "ModelTrainingFailed" and "no labels" in errors[0]["message"]


def test_test_connection_succeeds_and_reports_a_key_the_service_refuses(
    oci_vision_hook, monkeypatch, oci_vision_conn, oci_conn_fields
):
    ok, message = oci_vision_hook.test_connection()
    assert ok, message
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    extra = json.dumps(oci_conn_fields | {"private_key": other_pem})
    monkeypatch.setenv("AIRFLOW_CONN_OCI_OTHER_KEY", json.dumps(oci_vision_conn | {"extra": extra}))
    ok, message = OCIVisionHook(conn_id="oci_other_key", retry=VISION_FAST_RETRY).test_connection()
    assert not ok
    assert "HTTP 401 NotAuthenticated" in message and "signature does not match" in message
    assert not any(line in message for line in pem_body_lines(other_pem))


def test_test_connection_reports_a_wrong_passphrase_without_secrets(monkeypatch, oci_vision_conn, oci_private_key):
    encrypted = oci_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right-horse-battery"),
    ).decode()
    fields = json.loads(oci_vision_conn["extra"]) | {"private_key": encrypted, "passphrase": "wrong-staple-42"}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_BAD_PASS", json.dumps(oci_vision_conn | {"extra": json.dumps(fields)}))
    ok, message = OCIVisionHook(conn_id="oci_bad_pass").test_connection()
    assert not ok and "wrong passphrase" in message
    assert "wrong-staple-42" not in message
    assert not any(line in message for line in pem_body_lines(encrypted))


def test_a_request_signed_with_another_key_is_refused(oci_vision_hook, sandbox):
    # Same keyId, different private key: what a stolen keyId without its key would look like.
    client = oci_vision_hook.client
    client.auth = type(client.auth)(client.auth.key_id, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    client.close()  # the next call builds its httpx client with the new auth
    with pytest.raises(ServiceError) as info:
        oci_vision_hook.create_model(details(), retry_token="forged")
    assert info.value.status == 401 and info.value.code == "NotAuthenticated"
    assert "signature does not match" in info.value.message
    assert sandbox.sandbox.state.all("oci_vision") == []
    assert sandbox.sandbox.state.counters["oci.rejected_signatures"] == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda r: r.headers.__setitem__("date", r.headers["date"].replace("GMT", "+0000")),
            "signature does not match",
        ),
        (lambda r: _swap_body(r, b"A"), "x-content-sha256 does not match the body"),
        (lambda r: r.headers.__setitem__("x-content-sha256", "AAAA"), "x-content-sha256 does not match"),
    ],
    ids=["date-changed", "body-changed", "hash-changed"],
)
def test_a_request_changed_after_signing_is_refused(oci_vision_hook, sandbox, tamper, reason):
    client = oci_vision_hook.client.client
    # httpx runs request event hooks after auth: exactly "on the wire, after signing".
    client.event_hooks["request"] = [tamper]
    with pytest.raises(ServiceError) as info:
        oci_vision_hook.create_model(details(), retry_token="tampered")
    assert info.value.status == 401
    assert reason in info.value.message
    assert sandbox.sandbox.state.all("oci_vision") == []


def _swap_body(request: httpx.Request, first_byte: bytes) -> None:
    """Change the body's first character, keeping its length (so only the signature can tell)."""
    body = first_byte + request.content[1:]
    request._content = body
    request.stream = httpx.ByteStream(body)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("CREATING", "waiting"),
        ("UPDATING", "waiting"),
        ("ACTIVE", "success"),
        ("FAILED", "failure"),
        ("DELETING", "failure"),
        ("DELETED", "failure"),
        ("SOMETHING_NEW", "waiting"),
    ],
)
def test_the_lifecycle_spec_classifies_every_model_state(state, outcome):
    assert Waiter(MODEL_LIFECYCLE, {"model_id": "m"}).evaluate({"lifecycleState": state}).outcome == outcome


# == retry parity with the oci SDK, and our own opc-request-id ====================================================
def _scripted_client(oci_private_pem, answers):
    """An OCI Vision client whose transport answers from ``answers`` (status, code) and records requests."""
    from airflow.sdk import Connection
    from fixtures.oci import FINGERPRINT, TENANCY, USER

    conn = Connection(
        conn_id="scripted",
        conn_type="oci_vision",
        host="https://vision.test",
        extra=json.dumps(
            {"tenancy": TENANCY, "user": USER, "fingerprint": FINGERPRINT, "private_key": oci_private_pem}
        ),
    )
    client = OCIVisionHook.client_from_connection(conn, VISION_FAST_RETRY)
    seen: list[httpx.Request] = []
    script = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if not script:
            return httpx.Response(200, json={"id": "m"}, headers={"opc-request-id": "theirs-ok"})
        answer = script.pop(0)
        if answer == "drop":
            raise httpx.ReadTimeout("no answer", request=request)
        status, code = answer
        return httpx.Response(
            status, json={"code": code, "message": "m"}, headers={"opc-request-id": f"theirs-{status}"}
        )

    client._client = httpx.Client(transport=httpx.MockTransport(handler), **client._client_kwargs())
    return client, seen


@pytest.mark.parametrize(
    ("answer", "resent"),
    [
        ((409, "IncorrectState"), True),
        ((409, "LockConflict"), True),
        ((409, "Conflict"), False),
        ((500, "InternalServerError"), True),
        ((501, "MethodNotImplemented"), False),
        ((507, "InsufficientStorage"), True),
        ((400, "InvalidParameter"), False),
    ],
)
def test_gets_are_resent_on_what_the_sdk_resends(oci_private_pem, answer, resent):
    client, seen = _scripted_client(oci_private_pem, [answer])
    if resent:
        assert client.request(ApiRequest("GET", "/20220125/models/m")).status == 200
        assert len(seen) == 2
    else:
        with pytest.raises(ServiceError):
            client.request(ApiRequest("GET", "/20220125/models/m"))
        assert len(seen) == 1


def test_creates_are_resent_only_with_a_retry_token(oci_private_pem):
    client, seen = _scripted_client(oci_private_pem, [(409, "IncorrectState"), (503, "ServiceUnavailable")])
    client.request(ApiRequest("POST", "/20220125/models", json={}, headers={"opc-retry-token": "t"}))
    assert len(seen) == 3
    client, seen = _scripted_client(oci_private_pem, [(409, "IncorrectState")])
    with pytest.raises(ServiceError):
        client.request(ApiRequest("POST", "/20220125/models", json={}, idempotent=False))
    assert len(seen) == 1


def test_invalidated_retry_token_is_reported_with_oracles_meaning(oci_private_pem):
    client, _seen = _scripted_client(oci_private_pem, [(409, "InvalidatedRetryToken")])
    with pytest.raises(ServiceError) as info:
        client.request(ApiRequest("POST", "/20220125/models", json={}, headers={"opc-retry-token": "t"}))
    assert info.value.code == "InvalidatedRetryToken"
    assert "retry-token was invalidated: a later operation" in str(info.value)


def test_every_call_carries_our_request_id_kept_across_retries_and_shown_in_errors(oci_private_pem, caplog):
    client, seen = _scripted_client(oci_private_pem, [(503, "ServiceUnavailable")])
    client.request(ApiRequest("GET", "/20220125/models/m"))
    ours = {r.headers["opc-request-id"] for r in seen}
    assert len(ours) == 1 and len(next(iter(ours))) == 32
    assert f"ours: {next(iter(ours))}" in caplog.text and "theirs-503" in caplog.text
    client.request(ApiRequest("GET", "/20220125/models/m"))
    assert seen[-1].headers["opc-request-id"] not in ours  # a new call, a new id
    # No answer at all: the error still names our id, so Oracle support can find the call.
    client, seen = _scripted_client(oci_private_pem, ["drop"])
    with pytest.raises(ServiceError) as info:
        client.request(ApiRequest("POST", "/20220125/models", json={}, idempotent=False))
    assert info.value.status is None
    assert seen[0].headers["opc-request-id"] in str(info.value)
