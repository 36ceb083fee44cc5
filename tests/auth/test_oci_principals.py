"""Resource principal (RPv2.2 variables): the same signed requests as the oci SDK's own signer."""

from __future__ import annotations

import base64
import json
import re

import httpx
import pytest

from airflow_provider_modelreg.auth.oci import OCIAuthError, credentials_from_fields

DATE = "Tue, 01 Dec 2026 12:00:00 GMT"


def _params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', header.removeprefix("Signature ")))


def _jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{part}.c2ln"


@pytest.fixture
def rp_env(monkeypatch, tmp_path, oci_private_pem):
    token = _jwt({"res_tenant": "ocid1.tenancy.oc1..rp", "exp": 4102444800})
    (tmp_path / "rpst").write_text(token)
    (tmp_path / "key.pem").write_text(oci_private_pem)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", str(tmp_path / "rpst"))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", str(tmp_path / "key.pem"))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-gov-ashburn-1")
    return token


def test_resource_principal_signs_as_the_sdks_signer(rp_env):
    signers = pytest.importorskip("oci.auth.signers")
    creds = credentials_from_fields({"auth_type": "resource_principal"})
    assert creds.key_id == f"ST${rp_env}" and creds.region == "us-gov-ashburn-1"
    ours = creds.signer().sign_headers(
        "POST", "/20220125/models", "vision.test", {"date": DATE, "content-type": "application/json"}, b"{}"
    )
    sdk = signers.get_resource_principals_signer()
    request = httpx.Request(
        "POST",
        "https://vision.test/20220125/models",
        content=b"{}",
        headers={"date": DATE, "content-type": "application/json"},
    )
    import requests  # the SDK's signer is a requests auth

    prepared = requests.Request("POST", str(request.url), data=b"{}", headers=dict(request.headers)).prepare()
    sdk(prepared)
    # The same parameters (the SDK orders them differently) and the same signature bytes.
    assert _params(ours["authorization"]) == _params(prepared.headers["authorization"])


def test_resource_principal_names_what_is_missing(monkeypatch):
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_RPST", raising=False)
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", raising=False)
    with pytest.raises(OCIAuthError, match="missing OCI_RESOURCE_PRINCIPAL_RPST, OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"):
        credentials_from_fields({"auth_type": "resource_principal"})
