"""OCI credentials from a connection's fields or ``~/.oci/config``: API keys, profiles, session tokens."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fixtures.oci_signing import capture_transport, parse_authorization, pem_of

from airflow_provider_modelreg.auth.oci import (
    OCIAuthError,
    OCICredentials,
    OCISigner,
    credentials_from_fields,
    read_oci_config,
)
from airflow_provider_modelreg.sandbox.oci_signature import verify_oci_request

if TYPE_CHECKING:
    from pathlib import Path


def test_credentials_from_inline_fields(rsa_key: rsa.RSAPrivateKey) -> None:
    creds = credentials_from_fields(
        {
            "tenancy": "ocid1.tenancy.oc1..t",
            "user": "ocid1.user.oc1..u",
            "fingerprint": "aa:bb",
            "private_key": pem_of(rsa_key).decode().replace("\n", "\\n"),
            "region": "us-ashburn-1",
            "pass_phrase": "",
            "key_file": "",
        }
    )
    assert creds.key_id == "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb"
    assert creds.region == "us-ashburn-1"
    assert creds.private_key.private_numbers() == rsa_key.private_numbers()
    signer = creds.signer()
    assert isinstance(signer, OCISigner)
    assert signer.key_id == creds.key_id


def test_missing_fields_are_named(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(OCIAuthError) as info:
        credentials_from_fields({"tenancy": "t", "pass_phrase": "secret-pp-123"})
    message = str(info.value)
    for name in ("user", "fingerprint", "private_key/key_file"):
        assert name in message
    assert "tenancy" not in message.split("missing", 1)[1]
    assert "secret-pp-123" not in message


def test_repr_hides_key_material(rsa_key: rsa.RSAPrivateKey) -> None:
    creds = OCICredentials("ocid1.tenancy.oc1..t", "u", "aa:bb", "r", "ocid1.tenancy.oc1..t/u/aa:bb", rsa_key)
    text = repr(creds)
    assert "ocid1.tenancy.oc1..t/u/aa:bb" in text
    assert "private_key" not in text
    assert "RSAPrivateKey" not in text
    assert str(rsa_key.private_numbers().d)[:20] not in text
    token_creds = OCICredentials("t", None, None, None, "ST$eyJhbGciOi.secret-token.sig", rsa_key)
    assert "secret-token" not in repr(token_creds)
    assert "secret-token" not in repr(token_creds.signer())


def _fake_jwt(claims: dict) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(b'{}')}.{b64(json.dumps(claims).encode())}.{b64(b'sig')}"


def test_session_token_key_id(rsa_key: rsa.RSAPrivateKey, key_file: Path, tmp_path: Path) -> None:
    token = _fake_jwt({"tenant": "ocid1.tenancy.oc1..fromtoken", "sub": "x"})
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    creds = credentials_from_fields({"security_token_file": str(token_file), "key_file": str(key_file)})
    assert creds.key_id == f"ST${token}"
    assert creds.tenancy == "ocid1.tenancy.oc1..fromtoken"
    assert creds.user is None
    assert creds.fingerprint is None
    assert token not in repr(creds)

    seen: list[httpx.Request] = []
    with httpx.Client(transport=capture_transport(seen), auth=creds.signer()) as client:
        client.get("https://example.com/x")
    params = parse_authorization(seen[0].headers["authorization"])
    assert params["keyId"] == f"ST${token}"
    assert verify_oci_request("GET", "/x", seen[0].headers, b"", {f"ST${token}": rsa_key.public_key()})


def test_session_token_file_errors(key_file: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with pytest.raises(OCIAuthError, match="is empty"):
        credentials_from_fields({"security_token_file": str(empty), "key_file": str(key_file)})
    with pytest.raises(OCIAuthError, match="security_token_file"):
        credentials_from_fields({"security_token_file": str(tmp_path / "nope"), "key_file": str(key_file)})
    opaque = tmp_path / "opaque"
    opaque.write_text("not-a-jwt")
    with pytest.raises(OCIAuthError, match="missing tenancy"):
        credentials_from_fields({"security_token_file": str(opaque), "key_file": str(key_file)})


CONFIG_TEXT = """\
[DEFAULT]
tenancy = ocid1.tenancy.oc1..default
user = ocid1.user.oc1..default
fingerprint = 11:22
key_file = {key_file}
region = us-ashburn-1

[OTHER]
user = ocid1.user.oc1..other
fingerprint = 33:44
region = eu-frankfurt-1

[SESSION]
security_token_file = {token_file}
"""


@pytest.fixture
def config_file(tmp_path: Path, key_file: Path) -> Path:
    token_file = tmp_path / "token"
    token_file.write_text("session-token-value")
    path = tmp_path / "config"
    path.write_text(CONFIG_TEXT.format(key_file=key_file, token_file=token_file))
    return path


def test_read_oci_config_inherits_default(config_file: Path, key_file: Path) -> None:
    other = read_oci_config(str(config_file), "OTHER")
    assert other == {
        "tenancy": "ocid1.tenancy.oc1..default",
        "user": "ocid1.user.oc1..other",
        "fingerprint": "33:44",
        "key_file": str(key_file),
        "region": "eu-frankfurt-1",
    }
    default = read_oci_config(str(config_file))
    assert default["user"] == "ocid1.user.oc1..default"
    assert "security_token_file" not in default


def test_read_oci_config_errors(config_file: Path, tmp_path: Path) -> None:
    with pytest.raises(OCIAuthError) as info:
        read_oci_config(str(config_file), "MISSING")
    assert "'MISSING'" in str(info.value)
    assert str(config_file) in str(info.value)

    missing = tmp_path / "nope" / "config"
    with pytest.raises(OCIAuthError) as info:
        read_oci_config(str(missing), "DEFAULT")
    assert str(missing) in str(info.value)
    assert "'DEFAULT'" in str(info.value)

    no_default = tmp_path / "no_default"
    no_default.write_text("[A]\nuser = u\n")
    with pytest.raises(OCIAuthError, match="'DEFAULT' not found"):
        read_oci_config(str(no_default))

    broken = tmp_path / "broken"
    broken.write_text("pass_phrase = hunter2-secret\n[A]\n")
    with pytest.raises(OCIAuthError) as info:
        read_oci_config(str(broken))
    assert "hunter2-secret" not in str(info.value)


def test_credentials_from_profile_with_overrides(rsa_key: rsa.RSAPrivateKey, config_file: Path) -> None:
    creds = credentials_from_fields({"config_file": str(config_file), "profile": "OTHER"})
    assert creds.key_id == "ocid1.tenancy.oc1..default/ocid1.user.oc1..other/33:44"
    assert creds.region == "eu-frankfurt-1"
    assert creds.private_key.private_numbers() == rsa_key.private_numbers()

    overridden = credentials_from_fields(
        {"config_file": str(config_file), "profile": "OTHER", "region": "ap-tokyo-1", "fingerprint": "55:66"}
    )
    assert overridden.region == "ap-tokyo-1"
    assert overridden.key_id.endswith("/55:66")

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inline = credentials_from_fields(
        {"config_file": str(config_file), "private_key": pem_of(other_key).decode(), "user": ""}
    )
    # An inline key wins over the profile's key_file; a blank field does not erase the profile's value.
    assert inline.private_key.private_numbers() == other_key.private_numbers()
    assert inline.user == "ocid1.user.oc1..default"


def test_credentials_from_session_profile(config_file: Path) -> None:
    creds = credentials_from_fields({"config_file": str(config_file), "profile": "SESSION"})
    assert creds.key_id == "ST$session-token-value"
    assert creds.tenancy == "ocid1.tenancy.oc1..default"


def test_profile_defaults_to_home_config(config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".oci").mkdir(parents=True)
    (home / ".oci" / "config").write_text(config_file.read_text())
    monkeypatch.setenv("HOME", str(home))
    assert credentials_from_fields({"profile": "OTHER"}).fingerprint == "33:44"
