"""Instance principal: certificates from the instance metadata service, federation for a session token,
the same requests as the oci SDK's InstancePrincipalsSecurityTokenSigner pointed at the same fakes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from typing import Any

import httpx
import pytest
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_FAST_RETRY, vision_arguments

from airflow_provider_modelreg.auth import oci_principals
from airflow_provider_modelreg.auth.oci import OCIAuthError, credentials_from_fields
from airflow_provider_modelreg.sandbox.oci_identity import REQUESTS, TENANCY, TOKEN_SECONDS
from airflow_provider_modelreg.sandbox.oci_signature import verify_oci_request

pytestmark = pytest.mark.integration

VISION = "/20220125/models"


def _params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header.removeprefix("Signature ")))


def _federations(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox.sandbox.state.extra.get(REQUESTS, {}).get("federation", [])


def _sign_get(auth: Any, url: str) -> httpx.Request:
    request = httpx.Request("GET", url, params={"compartmentId": VISION_COMPARTMENT})
    flow = auth.sync_auth_flow(request)
    return next(flow)


def test_our_token_request_and_signed_calls_are_the_sdks(sandbox, instance_principal_fields, monkeypatch):
    signers = pytest.importorskip("oci.auth.signers")
    requests = pytest.importorskip("requests")
    state = sandbox.sandbox.state

    ours = credentials_from_fields(instance_principal_fields)
    assert (ours.tenancy, ours.region) == (TENANCY, "us-ashburn-1")  # region: IMDS's short name "iad", resolved
    monkeypatch.setenv("OCI_METADATA_BASE_URL", instance_principal_fields["metadata_base_url"])
    sdk = signers.InstancePrincipalsSecurityTokenSigner(
        federation_endpoint=instance_principal_fields["federation_endpoint"]
    )
    assert (sdk.tenancy_id, sdk.region) == (ours.tenancy, ours.region)

    our_call, sdk_call = _federations(sandbox)
    # The same keyId (tenancy/fed-x509/<leaf fingerprint>), the same signed headers (no host), the same body.
    assert our_call["signature_params"] == sdk_call["signature_params"]
    assert our_call["signature_params"]["keyId"].startswith(f"{TENANCY}/fed-x509/")
    assert our_call["body_keys"] == sdk_call["body_keys"] == ["certificate", "intermediateCertificates", "publicKey"]

    # Both then sign as ST$<token> with the session key the federation learnt: the same headers signed.
    url = f"{sandbox.url}{VISION}"
    our_request = _sign_get(ours.signer(), url)
    prepared = requests.Request("GET", url, params={"compartmentId": VISION_COMPARTMENT}).prepare()
    sdk(prepared)
    our_params, sdk_params = _params(our_request.headers["authorization"]), _params(prepared.headers["authorization"])
    assert our_params["headers"] == sdk_params["headers"] == "date (request-target) host"
    for params in (our_params, sdk_params):
        assert params["keyId"].startswith("ST$") and params["keyId"] in state.oci_public_keys
    assert our_params["keyId"] != sdk_params["keyId"]  # two federations, two session keys
    keys = {k: _public(v) for k, v in state.oci_public_keys.items()}
    raw_path = our_request.url.raw_path.decode()
    assert verify_oci_request("GET", raw_path, our_request.headers, b"", keys) == our_params["keyId"]
    assert verify_oci_request("GET", raw_path, prepared.headers, b"", keys) == sdk_params["keyId"]
    # And the sandbox's Vision accepts both.
    with httpx.Client(auth=ours.signer()) as client:
        assert client.get(url, params={"compartmentId": VISION_COMPARTMENT}).status_code == 200
    assert requests.get(url, params={"compartmentId": VISION_COMPARTMENT}, auth=sdk).status_code == 200


def _public(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode())


def _vision_hook(monkeypatch, sandbox, fields: dict[str, Any]) -> Any:
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook

    conn = {"conn_type": "oci_vision", "host": sandbox.url, "extra": json.dumps(fields)}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_INSTANCE", json.dumps(conn))
    return OCIVisionHook(conn_id="oci_instance", retry=VISION_FAST_RETRY)


def test_a_vision_hook_on_an_instance_principal_trains_a_model(sandbox, instance_principal_fields, monkeypatch, caplog):
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    hook = _vision_hook(monkeypatch, sandbox, instance_principal_fields)
    created = hook.create_model(validate_request(CreateModelDetails, vision_arguments()), retry_token="ip-1")
    assert hook.get_model(created.model["id"])["id"] == created.model["id"]
    assert [m["id"] for m in hook.list_models(compartment_id=VISION_COMPARTMENT)] == [created.model["id"]]
    assert len(_federations(sandbox)) == 1  # one token for every call
    token = hook.client.auth.key_id[3:]
    assert token not in caplog.text and token not in repr(hook.client.auth)


def test_the_token_is_renewed_before_it_expires(sandbox, instance_principal_fields, monkeypatch):
    hook = _vision_hook(monkeypatch, sandbox, instance_principal_fields)
    hook.list_models(compartment_id=VISION_COMPARTMENT)
    identity = hook.client.auth.identity
    first = identity.key_id
    expires = identity.claims["exp"]
    identity._clock = lambda: expires - 61  # still more than the SDK's 60 s of jitter left
    hook.list_models(compartment_id=VISION_COMPARTMENT)
    assert identity.key_id == first and len(_federations(sandbox)) == 1
    identity._clock = lambda: expires - 59
    hook.list_models(compartment_id=VISION_COMPARTMENT)
    assert identity.key_id != first and len(_federations(sandbox)) == 2
    assert identity.claims["exp"] > expires - 59  # the new one is not due at once


def test_a_401_fetches_a_new_token_and_resends_once(sandbox, instance_principal_fields, monkeypatch):
    hook = _vision_hook(monkeypatch, sandbox, instance_principal_fields)
    hook.list_models(compartment_id=VISION_COMPARTMENT)
    identity = hook.client.auth.identity
    revoked = identity.key_id
    del sandbox.sandbox.state.oci_public_keys[revoked]  # the service no longer knows the token
    identity._renewed_at = float("-inf")  # as if renewed long ago (the grace window protects fresh tokens)
    assert hook.list_models(compartment_id=VISION_COMPARTMENT) == []
    assert identity.key_id != revoked and len(_federations(sandbox)) == 2
    assert sandbox.sandbox.state.counters["oci.rejected_signatures"] == 1


def test_short_lived_tokens_are_renewed_off_the_event_loop(sandbox, instance_principal_fields, monkeypatch):
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook

    sandbox.sandbox.state.extra[TOKEN_SECONDS] = 30  # shorter than the jitter: every request renews it
    conn = {"conn_type": "oci_vision", "host": sandbox.url, "extra": json.dumps(instance_principal_fields)}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_INSTANCE_ASYNC", json.dumps(conn))
    threads: list[threading.Thread] = []
    exchange = oci_principals.InstancePrincipalIdentity._exchange

    def recording(self, key):
        threads.append(threading.current_thread())
        return exchange(self, key)

    monkeypatch.setattr(oci_principals.InstancePrincipalIdentity, "_exchange", recording)

    async def main() -> tuple[threading.Thread, list[str]]:
        clients = [await OCIVisionHook.aclient_for("oci_instance_async") for _ in range(3)]
        async with httpx.AsyncClient(auth=clients[0].auth) as http:
            answer = await http.get(f"{sandbox.url}{VISION}", params={"compartmentId": VISION_COMPARTMENT})
        return threading.current_thread(), [c.auth.share_key() for c in clients] + [str(answer.status_code)]

    loop_thread, (k1, k2, k3, status) = asyncio.run(main())
    assert status == "200" and k1 == k2 == k3  # three clients, one identity
    assert len(threads) == 2  # built once (not three times), renewed once for the request
    assert loop_thread not in threads


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_metadata_service_reachable_is_a_clear_error(fresh_principals):
    url = f"http://127.0.0.1:{_closed_port()}/opc/v2"
    fields = {"auth_type": "instance_principal", "metadata_base_url": url, "retry_max_attempts": 1}
    with pytest.raises(OCIAuthError, match=r"no instance metadata service reachable at http://127\.0\.0\.1") as info:
        credentials_from_fields(fields)
    assert "OCI Compute only" in str(info.value) and "OCI_METADATA_BASE_URL" in str(info.value)


def test_the_metadata_service_variable_is_read_as_the_sdk_reads_it(sandbox, fresh_principals, monkeypatch):
    monkeypatch.setenv("OCI_METADATA_BASE_URL", f"{sandbox.url}/opc/v2")
    creds = credentials_from_fields(
        {"auth_type": "instance_principal", "federation_endpoint": f"{sandbox.url}/v1/x509"}
    )
    assert creds.tenancy == TENANCY
    imds = sandbox.sandbox.state.extra[REQUESTS]["imds.cert.pem"]
    assert imds and all("authorization" in call["headers"] for call in imds)


def test_a_refusing_federation_endpoint_is_named_with_its_answer(sandbox, fresh_principals):
    fields = {
        "auth_type": "instance_principal",
        "metadata_base_url": f"{sandbox.url}/opc/v2",
        "federation_endpoint": f"{sandbox.url}/v1/nothing-here",
    }
    with pytest.raises(OCIAuthError, match=r"federation endpoint .*/v1/nothing-here gave no session token.*HTTP 404"):
        credentials_from_fields(fields)


def test_the_default_federation_endpoint_follows_the_regions_realm(sandbox, fresh_principals, monkeypatch):
    # No federation_endpoint: https://auth.<region>.<realm domain>/v1/x509, as oci.regions.endpoint_for('auth').
    calls: list[str] = []

    def no_network(self, key):
        calls.append(self.federation_endpoint)
        raise OCIAuthError("stop here")

    monkeypatch.setattr(oci_principals.InstancePrincipalIdentity, "_exchange", no_network)
    with pytest.raises(OCIAuthError, match="stop here"):
        credentials_from_fields({"auth_type": "instance_principal", "metadata_base_url": f"{sandbox.url}/opc/v2"})
    assert calls == ["https://auth.us-ashburn-1.oraclecloud.com/v1/x509"]
    try:
        from oci import regions  # the SDK's own answer, where it is installed (not on the Airflow 3.2 env)
    except ImportError:
        return
    assert calls[0] == f"{regions.endpoint_for('auth', 'us-ashburn-1')}/v1/x509"


def test_the_fake_metadata_service_refuses_a_request_without_the_v2_header(sandbox):
    assert httpx.get(f"{sandbox.url}/opc/v2/identity/cert.pem").status_code == 401
    answer = httpx.get(f"{sandbox.url}/opc/v2/identity/cert.pem", headers={"Authorization": "Bearer Oracle"})
    assert answer.status_code == 200 and answer.text.startswith("-----BEGIN CERTIFICATE-----")


def test_a_certificate_without_a_tenancy_is_refused_by_name():
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no tenancy here")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(OCIAuthError, match="names no tenancy"):
        oci_principals._tenancy_of_certificate(cert)


def test_a_deferred_training_task_on_an_instance_principal_keeps_its_token_out_of_logs_xcom_and_trigger(
    run_dag, sandbox, instance_principal_fields, capfd, monkeypatch
):
    import datetime as dt

    from airflow.sdk import DAG

    from airflow_provider_modelreg.lifecycle import LifecycleTrigger
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    serialized: list[Any] = []
    original = LifecycleTrigger.serialize
    monkeypatch.setattr(LifecycleTrigger, "serialize", lambda self: serialized.append(original(self)) or serialized[-1])
    with DAG("oci_vision_instance_principal", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        OCIVisionCreateModelOperator(
            task_id="train", conn_id="oci_ip", deferrable=True, **vision_arguments(poll_interval=0.2)
        )
    conn = {"conn_type": "oci_vision", "host": sandbox.url, "extra": json.dumps(instance_principal_fields)}
    result = run_dag(dag, {"oci_ip": conn})
    assert result.state == "success" and result.xcom("train")["lifecycleState"] == "ACTIVE"
    assert serialized, "the task did not defer"
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1
    assert len(_federations(sandbox)) == 1  # the task and its trigger share the process's one identity
    tokens = [k[3:] for k in sandbox.sandbox.state.oci_public_keys if k.startswith("ST$")]
    assert tokens
    captured = capfd.readouterr()
    places = {
        "logs": captured.out + captured.err,
        "xcom": json.dumps(result.xcom("train")),
        "trigger": json.dumps(serialized),
    }
    for where, text in places.items():
        assert not [t for t in tokens if t in text], where
    assert "ocid1.aivisionmodel." in places["trigger"]  # the kwargs were captured: the check can fail


def test_a_metadata_service_failing_on_the_certificates_is_retried_then_named(sandbox, instance_principal_fields):
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    # One 503 is retried as the SDK retries the metadata service; answers that keep failing end in a clear error.
    sandbox.sandbox.faults.rules.append(FaultRule(path="/opc/v2/identity/cert.pem", status=503, count=1))
    fields = instance_principal_fields | {"retry_max_attempts": 2}
    assert credentials_from_fields(fields).tenancy == TENANCY
    oci_principals.forget_principals()
    sandbox.sandbox.faults.rules.append(FaultRule(path="/opc/v2/identity/cert.pem", status=503, count=None))
    with pytest.raises(
        OCIAuthError, match=r"could not read the instance's certificates .*identity/cert\.pem.*HTTP 503"
    ):
        credentials_from_fields(fields)
