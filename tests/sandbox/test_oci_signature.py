"""Server-side OCI signature checks: accept what a correct signer sends, refuse everything else."""

from __future__ import annotations

import base64
import email.utils
import hashlib

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from airflow_provider_modelreg.auth.oci import OCISigner
from airflow_provider_modelreg.sandbox.oci_signature import (
    NOT_AUTHENTICATED_MESSAGE,
    SignatureRejected,
    verify_oci_request,
)

KEY_ID = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb:cc"
NOW = 1_790_000_000.0  # a fixed server clock
DATE = email.utils.formatdate(NOW, usegmt=True)
BODY = b'{"displayName": "model-1", "isQuickMode": true}'


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def keys(key: rsa.RSAPrivateKey) -> dict:
    return {KEY_ID: key.public_key()}


def signed(
    key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: bytes = b"",
    date: str = DATE,
    key_id: str = KEY_ID,
) -> httpx.Request:
    """A request exactly as OCISigner would send it."""
    request = httpx.Request(method, url, headers={"date": date}, content=body)
    flow = OCISigner(key_id, key).sync_auth_flow(request)
    return next(flow)


def verify(request: httpx.Request, keys: dict, **overrides) -> str:
    args = {
        "method": request.method,
        "raw_path": request.url.raw_path.decode(),
        "headers": request.headers,
        "body": request.content,
        "public_keys": keys,
        "now": NOW,
    }
    args.update(overrides)
    return verify_oci_request(**args)


def rejected(request: httpx.Request, keys: dict, **overrides) -> SignatureRejected:
    with pytest.raises(SignatureRejected) as info:
        verify(request, keys, **overrides)
    error = info.value
    assert error.code == "NotAuthenticated"
    assert error.message.startswith(NOT_AUTHENTICATED_MESSAGE)
    assert error.status_code == 401
    return error


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", "https://example.com/20220125/models?compartmentId=ocid1.c&displayName=a%20b%3Ac", b""),
        ("HEAD", "https://example.com/x", b""),
        ("DELETE", "https://example.com:8443/x/y", b""),
        ("POST", "https://example.com/20220125/models", BODY),
        ("PUT", "https://example.com/x", "Mod\u00e8le \u5b66\u7fd2".encode()),
        ("PATCH", "https://example.com/x", b""),
        ("POST", "http://127.0.0.1:5000/api/2.0/mlflow/runs/create", b""),
    ],
)
def test_accepts_what_the_signer_sends(key: rsa.RSAPrivateKey, keys: dict, method: str, url: str, body: bytes) -> None:
    assert verify(signed(key, method, url, body), keys) == KEY_ID


def test_accepts_oracle_published_vector() -> None:
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(
        b"-----BEGIN PUBLIC KEY-----\n"
        b"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3\n"
        b"6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6\n"
        b"Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw\n"
        b"oYi+1hqp1fIekaxsyQIDAQAB\n"
        b"-----END PUBLIC KEY-----\n"
    )
    key_id = (
        "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq/"
        "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq/"
        "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34"
    )
    date = "Thu, 05 Jan 2014 21:31:40 GMT"
    # The Go SDK's parameter order, verbatim.
    authorization = (
        f'Signature version="1",headers="date (request-target) host",keyId="{key_id}",algorithm="rsa-sha256",'
        'signature="GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6'
        'YZAHc9r2DmE4pMwOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M="'
    )
    raw_path = (
        "/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1"
        "&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa"
        "&displayName=TeamXInstances"
        "&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q"
    )
    headers = {"Date": date, "Host": "iaas.us-phoenix-1.oraclecloud.com", "Authorization": authorization}
    now = email.utils.parsedate_to_datetime(date).timestamp()
    assert verify_oci_request("GET", raw_path, headers, b"", {key_id: public}, now=now) == key_id
    with pytest.raises(SignatureRejected, match="away from the server clock"):
        verify_oci_request("GET", raw_path, headers, b"", {key_id: public})


def test_rejects_tampered_body(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "POST", "https://example.com/m", BODY)
    tampered = BODY.replace(b"model-1", b"model-2")
    assert "x-content-sha256" in rejected(request, keys, body=tampered).reason

    # Recomputing the hash header does not help: that header is signed.
    headers = dict(request.headers)
    headers["x-content-sha256"] = base64.b64encode(hashlib.sha256(tampered).digest()).decode()
    assert "signature" in rejected(request, keys, body=tampered, headers=headers).reason


def test_rejects_content_length_mismatch(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "POST", "https://example.com/m", BODY)
    headers = {**request.headers, "content-length": str(len(BODY) + 1)}
    assert "content-length" in rejected(request, keys, headers=headers).reason


@pytest.mark.parametrize(
    "raw_path",
    ["/20220125/models?compartmentId=ocid1.d", "/20220125/models", "/20220125/Models?compartmentId=ocid1.c"],
)
def test_rejects_tampered_path(key: rsa.RSAPrivateKey, keys: dict, raw_path: str) -> None:
    request = signed(key, "GET", "https://example.com/20220125/models?compartmentId=ocid1.c")
    assert "signature" in rejected(request, keys, raw_path=raw_path).reason


def test_rejects_other_method_or_host(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "DELETE", "https://example.com/x")
    assert "signature" in rejected(request, keys, method="GET").reason
    headers = {**request.headers, "host": "evil.example.com"}
    assert "signature" in rejected(request, keys, headers=headers).reason


def test_rejects_post_without_body_headers_signed(key: rsa.RSAPrivateKey, keys: dict) -> None:
    # Signed the GET way (date, (request-target), host only), then sent as a POST with a body.
    out = OCISigner(KEY_ID, key).sign_headers("GET", "/m", "example.com", {"date": DATE}, b"")
    headers = {
        "date": DATE,
        "host": "example.com",
        "content-type": "application/json",
        "content-length": str(len(BODY)),
        "x-content-sha256": base64.b64encode(hashlib.sha256(BODY).digest()).decode(),
        **out,
    }
    with pytest.raises(SignatureRejected) as info:
        verify_oci_request("POST", "/m", headers, BODY, keys, now=NOW)
    assert info.value.reason == "required header 'content-length' is not signed"

    # The headers list names x-content-sha256 last; drop it alone and the check still fires.
    signing = (
        f"date: {DATE}\n(request-target): post /m\nhost: example.com\n"
        f"content-length: {len(BODY)}\ncontent-type: application/json"
    )
    sig = base64.b64encode(key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    headers["authorization"] = (
        f'Signature version="1",keyId="{KEY_ID}",algorithm="rsa-sha256",'
        f'headers="date (request-target) host content-length content-type",signature="{sig}"'
    )
    with pytest.raises(SignatureRejected, match="'x-content-sha256' is not signed"):
        verify_oci_request("POST", "/m", headers, BODY, keys, now=NOW)


def test_rejects_signed_header_missing_from_request(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "PUT", "https://example.com/x", BODY)
    headers = {k: v for k, v in request.headers.items() if k != "content-type"}
    assert rejected(request, keys, headers=headers).reason == (
        "signed header 'content-type' is missing from the request"
    )


def test_rejects_unknown_key(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "GET", "https://example.com/x", key_id="ocid1.tenancy.oc1..t/ocid1.user.oc1..u/zz")
    assert rejected(request, keys).reason == "unknown keyId"
    # The right keyId with the wrong key is a bad signature.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "signature" in rejected(signed(other, "GET", "https://example.com/x"), keys).reason


@pytest.mark.parametrize("offset", [-240, 240, -299, 299])
def test_accepts_clock_skew_within_five_minutes(key: rsa.RSAPrivateKey, keys: dict, offset: int) -> None:
    request = signed(key, "GET", "https://example.com/x", date=email.utils.formatdate(NOW + offset, usegmt=True))
    assert verify(request, keys) == KEY_ID


@pytest.mark.parametrize("offset", [-360, 360, -301])
def test_rejects_clock_skew_over_five_minutes(key: rsa.RSAPrivateKey, keys: dict, offset: int) -> None:
    request = signed(key, "GET", "https://example.com/x", date=email.utils.formatdate(NOW + offset, usegmt=True))
    assert "server clock" in rejected(request, keys).reason


def test_rejects_malformed_date(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "GET", "https://example.com/x", date="yesterday")
    assert "not an HTTP date" in rejected(request, keys).reason


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing Authorization header"),
        ("Bearer abc", "not of the form"),
        ("Signature keyId=abc", "malformed"),
        ('Signature keyId="a",keyId="b"', "given twice"),
        ('Signature keyId="a",headers="date"', "lacks keyId, headers or signature"),
    ],
)
def test_rejects_malformed_authorization(
    key: rsa.RSAPrivateKey, keys: dict, authorization: str | None, reason: str
) -> None:
    request = signed(key, "GET", "https://example.com/x")
    headers = {k: v for k, v in request.headers.items() if k != "authorization"}
    if authorization is not None:
        headers["authorization"] = authorization
    assert reason in rejected(request, keys, headers=headers).reason


def test_rejects_other_algorithm(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "GET", "https://example.com/x")
    headers = dict(request.headers)
    headers["authorization"] = headers["authorization"].replace("rsa-sha256", "hmac-sha256")
    assert "algorithm" in rejected(request, keys, headers=headers).reason


def test_rejects_unsupported_method(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "GET", "https://example.com/x")
    assert "OPTIONS" in rejected(request, keys, method="OPTIONS").reason


def test_headers_are_case_insensitive(key: rsa.RSAPrivateKey, keys: dict) -> None:
    request = signed(key, "POST", "https://example.com/m", BODY)
    title_case = {k.title(): v for k, v in request.headers.items()}
    assert "Authorization" in title_case
    assert verify(request, keys, headers=title_case) == KEY_ID


def test_accepts_starlette_headers(key: rsa.RSAPrivateKey, keys: dict) -> None:
    datastructures = pytest.importorskip("starlette.datastructures")
    request = signed(key, "POST", "https://example.com/m", BODY)
    raw = [(name.lower(), value) for name, value in request.headers.raw]  # ASGI form: lower-case bytes
    assert verify(request, keys, headers=datastructures.Headers(raw=raw)) == KEY_ID


def test_session_token_key_ids(key: rsa.RSAPrivateKey) -> None:
    token_key_id = "ST$eyJhbGciOiJSUzI1NiJ9.eyJ0ZW5hbnQiOiJ0In0.c2ln"
    request = signed(key, "GET", "https://example.com/x", key_id=token_key_id)
    # Listed by its whole keyId...
    assert verify(request, {token_key_id: key.public_key()}) == token_key_id
    # ...or resolved by a "ST$" callable, as a server that reads the key out of the token would.
    seen: list[str] = []

    def resolve(key_id: str) -> rsa.RSAPublicKey | None:
        seen.append(key_id)
        return key.public_key() if key_id == token_key_id else None

    assert verify(request, {"ST$": resolve}) == token_key_id
    assert seen == [token_key_id]
    other = signed(key, "GET", "https://example.com/x", key_id="ST$other")
    assert rejected(other, {"ST$": resolve}).reason == "unknown keyId"
