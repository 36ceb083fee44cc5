"""OKE workload identity: the pod's service-account token exchanged at the proxymux (over TLS, checked
against the cluster CA) for a session token, as the oci SDK's OkeWorkloadIdentityResourcePrincipalSigner."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from fixtures.oci_identity import service_account_jwt
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_FAST_RETRY

from airflow_provider_modelreg.auth.oci import OCIAuthError, credentials_from_fields
from airflow_provider_modelreg.sandbox.oci_identity import REQUESTS, TENANCY
from airflow_provider_modelreg.sandbox.oci_signature import verify_oci_request

pytestmark = pytest.mark.integration

VISION = "/20220125/models"


def _fields(env: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if not k.startswith("_")}


def _exchanges(sandbox: Any) -> list[dict[str, Any]]:
    return sandbox.sandbox.state.extra.get(REQUESTS, {}).get("proxymux", [])


def _params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header.removeprefix("Signature ")))


def test_our_exchange_and_signed_calls_are_the_sdks(sandbox, workload_env):
    signers = pytest.importorskip("oci.auth.signers")
    requests = pytest.importorskip("requests")
    from oci.auth.signers.resource_principals_signer import DefaultServiceAccountTokenProvider

    ours = credentials_from_fields(_fields(workload_env))
    assert ours.region == "us-ashburn-1" and ours.tenancy == TENANCY
    provider = DefaultServiceAccountTokenProvider()
    provider.override_sa_token_path(workload_env["service_account_token_file"])
    # The SDK's own signer, built as get_oke_workload_identity_resource_principal_signer builds it, on the
    # fake's port (the SDK fixes 12250; a test cannot take that port on a shared machine).
    sdk = signers.OkeWorkloadIdentityResourcePrincipalSigner(
        sa_token_provider=provider,
        sa_cert_path=str(workload_env["_ca"]),
        service_host="127.0.0.1",
        service_port=workload_env["_port"],
        region="us-ashburn-1",
    )
    our_call, sdk_call = _exchanges(sandbox)
    assert our_call["body_keys"] == sdk_call["body_keys"] == ["podKey"]
    assert {"authorization", "opc-request-id", "content-type"} <= set(our_call["headers"])
    assert {"authorization", "opc-request-id", "content-type"} <= set(sdk_call["headers"])

    url = f"{sandbox.url}{VISION}"
    keys = {k: _public(v) for k, v in sandbox.sandbox.state.oci_public_keys.items()}
    with httpx.Client(auth=ours.signer()) as client:
        answer = client.get(url, params={"compartmentId": VISION_COMPARTMENT})
    assert answer.status_code == 200
    prepared = requests.Request("GET", url, params={"compartmentId": VISION_COMPARTMENT}).prepare()
    sdk(prepared)
    our_params, sdk_params = (
        _params(answer.request.headers["authorization"]),
        _params(prepared.headers["authorization"]),
    )
    assert our_params["headers"] == sdk_params["headers"] == "date (request-target) host"
    assert our_params["keyId"].startswith("ST$") and sdk_params["keyId"].startswith("ST$")
    assert not our_params["keyId"].startswith("ST$ST$")  # the exchange's "ST$" prefix is stripped, as the SDK does
    raw_path = answer.request.url.raw_path.decode()
    assert verify_oci_request("GET", raw_path, answer.request.headers, b"", keys) == our_params["keyId"]
    assert verify_oci_request("GET", raw_path, prepared.headers, b"", keys) == sdk_params["keyId"]
    assert requests.get(url, params={"compartmentId": VISION_COMPARTMENT}, auth=sdk).status_code == 200


def _public(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(pem.encode())


def test_a_vision_hook_on_workload_identity_renews_at_half_life_and_rereads_the_token_file(
    sandbox, workload_env, monkeypatch
):
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook
    from airflow_provider_modelreg.sandbox.oci_identity import SERVICE_ACCOUNT_TOKENS

    conn = {"conn_type": "oci_vision", "host": sandbox.url, "extra": json.dumps(_fields(workload_env))}
    monkeypatch.setenv("AIRFLOW_CONN_OCI_OKE", json.dumps(conn))
    hook = OCIVisionHook(conn_id="oci_oke", retry=VISION_FAST_RETRY)
    assert hook.list_models(compartment_id=VISION_COMPARTMENT) == []
    identity = hook.client.auth.identity
    first = identity.key_id
    issued, expires = identity.claims["iat"], identity.claims["exp"]
    identity._clock = lambda: issued + (expires - issued) / 2 - 1
    hook.list_models(compartment_id=VISION_COMPARTMENT)
    assert identity.key_id == first and len(_exchanges(sandbox)) == 1

    # The kubelet rotated the service-account token; the next exchange (at half life) sends the new one.
    rotated = service_account_jwt(sub="system:serviceaccount:airflow:rotated")
    with open(workload_env["service_account_token_file"], "w") as fh:
        fh.write(rotated)
    sandbox.sandbox.state.extra[SERVICE_ACCOUNT_TOKENS] = [rotated]  # the old one is no longer accepted
    identity._clock = lambda: issued + (expires - issued) / 2 + 1
    assert hook.list_models(compartment_id=VISION_COMPARTMENT) == []
    assert identity.key_id != first and len(_exchanges(sandbox)) == 2


def test_outside_a_pod_the_missing_host_is_named(fresh_principals, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(OCIAuthError, match="KUBERNETES_SERVICE_HOST"):
        credentials_from_fields({"auth_type": "workload_identity"})


def test_a_missing_cluster_ca_is_named(fresh_principals, monkeypatch, tmp_path):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", str(tmp_path / "ca.crt"))
    with pytest.raises(OCIAuthError, match=r"cluster CA certificate .*ca\.crt.* is missing"):
        credentials_from_fields({"auth_type": "workload_identity"})


def test_a_missing_or_expired_service_account_token_is_named(workload_env, tmp_path):
    fields = _fields(workload_env) | {"service_account_token_file": str(tmp_path / "absent")}
    with pytest.raises(OCIAuthError, match=r"could not read the service account token .*absent"):
        credentials_from_fields(fields)
    expired = tmp_path / "expired"
    expired.write_text(service_account_jwt(lifetime=-10))
    with pytest.raises(OCIAuthError, match=r"service account token .*expired.* has expired"):
        credentials_from_fields(_fields(workload_env) | {"service_account_token_file": str(expired)})


def test_a_refused_exchange_gives_the_status_and_a_token_is_never_in_the_message(workload_env, tmp_path):
    stranger = service_account_jwt(sub="system:serviceaccount:other:pod")
    token_file = tmp_path / "stranger"
    token_file.write_text(stranger)
    with pytest.raises(OCIAuthError, match=r"token exchange at https://127\.0\.0\.1:\d+/.* failed: .*HTTP 401") as info:
        credentials_from_fields(_fields(workload_env) | {"service_account_token_file": str(token_file)})
    assert stranger not in str(info.value)


def test_a_proxymux_certificate_not_issued_by_the_cluster_ca_is_refused(workload_env, monkeypatch, tmp_path):
    from fixtures.tls import self_signed

    other_ca, _ = self_signed(tmp_path)
    monkeypatch.setenv("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", str(other_ca))
    fields = _fields(workload_env) | {"retry_max_attempts": 1}
    with pytest.raises(OCIAuthError, match=r"token exchange .* failed: .*(CERTIFICATE_VERIFY_FAILED|certificate)"):
        credentials_from_fields(fields)
