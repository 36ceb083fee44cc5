"""OCI request signing: Oracle's published vectors, equality with the ``oci`` SDK, the signer, key loading."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import TYPE_CHECKING

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fixtures.oci_signing import capture_transport, parse_authorization, pem_of

from airflow_provider_modelreg.auth.oci_signing import (
    EMPTY_BODY_SHA256,
    OCIAuthError,
    OCISigner,
    load_private_key,
)
from airflow_provider_modelreg.sandbox.oci_signature import verify_oci_request

if TYPE_CHECKING:
    from pathlib import Path

# --- Oracle's published test values (OCI "Request Signatures" page; oci-go-sdk http_signer_test.go) ---

ORACLE_PRIVATE_KEY = """-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
"""
ORACLE_TENANCY = "ocid1.tenancy.oc1..aaaaaaaaba3pv6wkcr4jqae5f15p2b2m2yt2j6rx32uzr4h25vqstifsfdsq"
ORACLE_USER = "ocid1.user.oc1..aaaaaaaat5nvwcna5j6aqzjcaty5eqbb6qt2jvpkanghtgdaqedqw3rynjq"
ORACLE_FINGERPRINT = "20:3b:97:13:55:1c:5b:0d:d3:37:d8:50:4e:c5:3a:34"
ORACLE_KEY_ID = f"{ORACLE_TENANCY}/{ORACLE_USER}/{ORACLE_FINGERPRINT}"
ORACLE_DATE = "Thu, 05 Jan 2014 21:31:40 GMT"
ORACLE_HOST = "iaas.us-phoenix-1.oraclecloud.com"
ORACLE_GET_TARGET = (
    "/20160918/instances?availabilityDomain=Pjwf%3A%20PHX-AD-1"
    "&compartmentId=ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa"
    "&displayName=TeamXInstances"
    "&volumeId=ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q"
)
ORACLE_GET_SIGNING_STRING = f"date: {ORACLE_DATE}\n(request-target): get {ORACLE_GET_TARGET}\nhost: {ORACLE_HOST}"
ORACLE_GET_SIGNATURE = (
    "GBas7grhyrhSKHP6AVIj/h5/Vp8bd/peM79H9Wv8kjoaCivujVXlpbKLjMPeDUhxkFIWtTtLBj3sUzaFj34XE6YZAHc9r2DmE4pM"
    "wOAy/kiITcZxa1oHPOeRheC0jP2dqbTll8fmTZVwKZOKHYPtrLJIJQHJjNvxFWeHQjMaR7M="
)
ORACLE_GET_HEADER = (
    'Signature version="1",headers="date (request-target) host",'
    f'keyId="{ORACLE_KEY_ID}",algorithm="rsa-sha256",signature="{ORACLE_GET_SIGNATURE}"'
)
ORACLE_POST_BODY = (
    b"{\n"
    b'    "compartmentId": '
    b'"ocid1.compartment.oc1..aaaaaaaam3we6vgnherjq5q2idnccdflvjsnog7mlr6rtdb25gilchfeyjxa",\n'
    b'    "instanceId": '
    b'"ocid1.instance.oc1.phx.abuw4ljrlsfiqw6vzzxb43vyypt4pkodawglp3wqxjqofakrwvou52gb6s5a",\n'
    b'    "volumeId": "ocid1.volume.oc1.phx.abyhqljrgvttnlx73nmrwfaux7kcvzfs3s66izvxf2h4lgvyndsdsnoiwr5q"\n'
    b"}"
)
ORACLE_POST_SHA256 = "V9Z20UJTvkvpJ50flBzKE32+6m2zJjweHpDMX/U4Uy0="
ORACLE_POST_SIGNING_STRING = (
    f"date: {ORACLE_DATE}\n(request-target): post /20160918/volumeAttachments\nhost: {ORACLE_HOST}\n"
    f"content-length: 316\ncontent-type: application/json\nx-content-sha256: {ORACLE_POST_SHA256}"
)
ORACLE_POST_SIGNATURE = (
    "Mje8vIDPlwIHmD/cTDwRxE7HaAvBg16JnVcsuqaNRim23fFPgQfLoOOxae6WqKb1uPjYEl0qIdazWaBy/Ml8DRhqlocMwoSXv0fb"
    "ukP8J5N80LCmzT/FFBvIvTB91XuXI3hYfP9Zt1l7S6ieVadHUfqBedWH0itrtPJBgKmrWso="
)
ORACLE_POST_HEADER = (
    'Signature version="1",headers="date (request-target) host content-length content-type x-content-sha256",'
    f'keyId="{ORACLE_KEY_ID}",algorithm="rsa-sha256",signature="{ORACLE_POST_SIGNATURE}"'
)


def run_auth_flow(auth: httpx.Auth, request: httpx.Request) -> httpx.Request:
    """Drive an httpx auth flow by hand and return the request it would send."""
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    return sent


def raw_sign(key: rsa.RSAPrivateKey, signing_string: str) -> str:
    return base64.b64encode(key.sign(signing_string.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


@pytest.fixture(scope="module")
def oracle_key() -> rsa.RSAPrivateKey:
    return load_private_key(ORACLE_PRIVATE_KEY)


# --- Oracle vectors ---------------------------------------------------------------------------------


def test_empty_body_constant() -> None:
    import hashlib

    assert base64.b64encode(hashlib.sha256(b"").digest()).decode() == EMPTY_BODY_SHA256


def test_oracle_get_vector(oracle_key: rsa.RSAPrivateKey) -> None:
    request = httpx.Request("GET", f"https://{ORACLE_HOST}{ORACLE_GET_TARGET}", headers={"date": ORACLE_DATE})
    sent = run_auth_flow(OCISigner(ORACLE_KEY_ID, oracle_key), request)

    params = parse_authorization(sent.headers["authorization"])
    assert params == parse_authorization(ORACLE_GET_HEADER)
    assert params["signature"] == ORACLE_GET_SIGNATURE
    # PKCS#1 v1.5 is deterministic: equal signatures over this key mean equal signing strings.
    assert raw_sign(oracle_key, ORACLE_GET_SIGNING_STRING) == ORACLE_GET_SIGNATURE
    assert sent.headers["date"] == ORACLE_DATE
    # GET signs no body headers, so none are added.
    assert "x-content-sha256" not in sent.headers


def test_oracle_get_header_exact_form(oracle_key: rsa.RSAPrivateKey) -> None:
    # Our parameter order is version, keyId, algorithm, headers, signature.
    out = OCISigner(ORACLE_KEY_ID, oracle_key).sign_headers(
        "GET", ORACLE_GET_TARGET, ORACLE_HOST, {"Date": ORACLE_DATE}, b""
    )
    assert out == {
        "authorization": (
            f'Signature version="1",keyId="{ORACLE_KEY_ID}",algorithm="rsa-sha256",'
            f'headers="date (request-target) host",signature="{ORACLE_GET_SIGNATURE}"'
        )
    }


@pytest.mark.parametrize("explicit_content_type", [True, False])
def test_oracle_post_vector(oracle_key: rsa.RSAPrivateKey, explicit_content_type: bool) -> None:
    assert len(ORACLE_POST_BODY) == 316
    headers = {"date": ORACLE_DATE}
    if explicit_content_type:
        headers["content-type"] = "application/json"
    request = httpx.Request(
        "POST", f"https://{ORACLE_HOST}/20160918/volumeAttachments", headers=headers, content=ORACLE_POST_BODY
    )
    sent = run_auth_flow(OCISigner(ORACLE_KEY_ID, oracle_key), request)

    params = parse_authorization(sent.headers["authorization"])
    assert params == parse_authorization(ORACLE_POST_HEADER)
    assert params["signature"] == ORACLE_POST_SIGNATURE
    assert raw_sign(oracle_key, ORACLE_POST_SIGNING_STRING) == ORACLE_POST_SIGNATURE
    assert sent.headers["x-content-sha256"] == ORACLE_POST_SHA256
    assert sent.headers["content-length"] == "316"
    assert sent.headers["content-type"] == "application/json"


def test_oracle_vectors_verify_with_published_public_key(oracle_key: rsa.RSAPrivateKey) -> None:
    public = serialization.load_pem_public_key(
        b"-----BEGIN PUBLIC KEY-----\n"
        b"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3\n"
        b"6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6\n"
        b"Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw\n"
        b"oYi+1hqp1fIekaxsyQIDAQAB\n"
        b"-----END PUBLIC KEY-----\n"
    )
    assert public.public_numbers() == oracle_key.public_key().public_numbers()


# --- Equality with the oci SDK's Signer -------------------------------------------------------------

SDK_DATE = "Tue, 24 Nov 2026 10:00:00 GMT"
SDK_CASES = [
    ("GET", f"https://{ORACLE_HOST}{ORACLE_GET_TARGET}", b"", {}),
    ("HEAD", "https://vision.aiservice.us-ashburn-1.oci.oraclecloud.com/20220125/models/ocid1.x", b"", {}),
    ("DELETE", "https://vision.aiservice.us-ashburn-1.oci.oraclecloud.com/20220125/models/a?b=1", b"", {}),
    (
        "GET",
        "https://datalake.eu-frankfurt-1.oci.oraclecloud.com/20260430/x/model-versions/get"
        "?name=my%2Fmodel%20%C3%BC&version=3&filter=a%3Ab%2Bc+d",
        b"",
        {},
    ),
    ("GET", "https://example.com:8443/api/2.0/mlflow/runs/get?run_id=abc%20def", b"", {}),
    (
        "POST",
        "https://vision.aiservice.us-ashburn-1.oci.oraclecloud.com/20220125/models",
        json.dumps({"displayName": "m", "isQuickMode": True}).encode(),
        {},
    ),
    (
        "POST",
        "https://datalake.eu-frankfurt-1.oci.oraclecloud.com/20260430/runs/create?x=%3A%20",
        json.dumps(
            {
                "name": "Mod\u00e8le \u2013 \u5b66\u7fd2 \u2713",
                "tags": [{"key": "\u00fc", "value": "\u00df"}],
            },
            ensure_ascii=False,
        ).encode(),
        {"content-type": "application/json; charset=utf-8"},
    ),
    ("PUT", "https://example.com/20220125/models/x", json.dumps({"a": "é"}, ensure_ascii=False).encode(), {}),
    ("PATCH", "https://example.com:8443/apis/models/v2/workspaces/w/models/n", b'{"description":"d"}', {}),
    ("POST", "https://example.com/20220125/models/x/actions/cancel", b"", {}),
    ("PUT", "https://example.com/20220125/models/x", b"", {}),
    ("PATCH", "https://example.com/20220125/models/x", b"", {"opc-request-id": "abc-123"}),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "extra_headers"),
    SDK_CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(SDK_CASES)],
)
def test_matches_oci_sdk_signer(
    rsa_key: rsa.RSAPrivateKey, key_file: Path, method: str, url: str, body: bytes, extra_headers: dict
) -> None:
    oci_signer = pytest.importorskip("oci.signer")
    oci_requests = pytest.importorskip("oci._vendor.requests")

    tenancy, user, fingerprint = "ocid1.tenancy.oc1..t", "ocid1.user.oc1..u", "aa:bb:cc"
    sdk = oci_signer.Signer(tenancy, user, fingerprint, private_key_file_location=str(key_file))
    headers = {"date": SDK_DATE, **extra_headers}
    sdk_request = oci_requests.Request(method, url, headers=headers, data=body).prepare()
    sdk(sdk_request)

    ours = run_auth_flow(
        OCISigner(f"{tenancy}/{user}/{fingerprint}", rsa_key),
        httpx.Request(method, url, headers=headers, content=body),
    )

    # Both libraries must send the same request-target, or equal signatures would prove nothing.
    assert ours.url.raw_path.decode() == sdk_request.path_url
    sdk_params = parse_authorization(sdk_request.headers["authorization"])
    our_params = parse_authorization(ours.headers["authorization"])
    assert our_params == sdk_params
    assert our_params["signature"] == sdk_params["signature"]
    assert our_params["headers"] == sdk_params["headers"]
    signed_names = sdk_params["headers"].split()
    for name in signed_names:
        if name not in ("(request-target)", "host"):
            assert ours.headers[name] == sdk_request.headers[name], name
    if method in ("POST", "PUT", "PATCH"):
        assert ours.headers["content-length"] == str(len(body))
        if not body:
            assert ours.headers["x-content-sha256"] == EMPTY_BODY_SHA256


# --- Behaviour of the signer ------------------------------------------------------------------------


def test_unsupported_method_raises(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = OCISigner("t/u/f", rsa_key)
    with pytest.raises(ValueError, match="OPTIONS"):
        signer.sign_headers("OPTIONS", "/", "h", {}, b"")
    with pytest.raises(ValueError, match="TRACE"):
        run_auth_flow(signer, httpx.Request("TRACE", "https://example.com/"))


def test_key_id_cannot_break_out_of_header(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="keyId"):
        OCISigner('t/u/f",signature="x', rsa_key)
    with pytest.raises(TypeError):
        OCISigner("t/u/f", "not a key")  # type: ignore[arg-type]


def test_sets_date_and_content_headers_when_missing(rsa_key: rsa.RSAPrivateKey) -> None:
    sent = run_auth_flow(OCISigner("t/u/f", rsa_key), httpx.Request("POST", "https://example.com/x"))
    assert sent.headers["content-length"] == "0"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-content-sha256"] == EMPTY_BODY_SHA256
    sent_at = sent.headers["date"]
    assert sent_at.endswith(" GMT")
    verify_oci_request("POST", "/x", sent.headers, b"", {"t/u/f": rsa_key.public_key()})


def test_keeps_caller_date_and_content_type(rsa_key: rsa.RSAPrivateKey) -> None:
    out = OCISigner("t/u/f", rsa_key).sign_headers(
        "PUT", "/x", "h", {"Date": SDK_DATE, "Content-Type": "application/octet-stream"}, b"\x00\x01"
    )
    assert "date" not in out
    assert "content-type" not in out
    assert out["content-length"] == "2"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://example.com:8443/p?q=1", "example.com:8443"),
        ("https://example.com:443/p", "example.com"),  # httpx drops a default port from Host
        ("http://127.0.0.1:5000/p", "127.0.0.1:5000"),
        ("http://[::1]:8080/p", "[::1]:8080"),
    ],
)
def test_signs_host_header_as_sent(rsa_key: rsa.RSAPrivateKey, url: str, host: str) -> None:
    sent = run_auth_flow(OCISigner("t/u/f", rsa_key), httpx.Request("GET", url))
    assert sent.headers["host"] == host
    verify_oci_request("GET", sent.url.raw_path.decode(), sent.headers, b"", {"t/u/f": rsa_key.public_key()})


def test_streamed_body_is_hashed_and_sent_with_length(rsa_key: rsa.RSAPrivateKey) -> None:
    captured: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return httpx.Response(200)

    def chunks():
        yield b'{"a": '
        yield b"1}"

    with httpx.Client(transport=httpx.MockTransport(handler), auth=OCISigner("t/u/f", rsa_key)) as client:
        client.post("https://example.com/x", content=chunks())
    (request,) = captured
    assert "transfer-encoding" not in request.headers
    assert request.headers["content-length"] == "8"
    verify_oci_request("POST", "/x", request.headers, request.content, {"t/u/f": rsa_key.public_key()})


def test_sync_client_requests_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    seen: list[httpx.Request] = []
    keys = {"t/u/f": rsa_key.public_key()}
    with httpx.Client(
        transport=capture_transport(seen), auth=OCISigner("t/u/f", rsa_key), base_url="https://example.com"
    ) as client:
        client.get("/20220125/models", params={"compartmentId": "ocid1.c", "displayName": "a b:c"})
        client.post("/20220125/models", content=json.dumps({"n": "é"}, ensure_ascii=False).encode())
        client.delete("/20220125/models/x")
    assert len(seen) == 3
    for request in seen:
        assert verify_oci_request(
            request.method, request.url.raw_path.decode(), request.headers, request.content, keys
        ) == ("t/u/f")


def test_async_client_requests_verify(rsa_key: rsa.RSAPrivateKey) -> None:
    seen: list[httpx.Request] = []
    keys = {"t/u/f": rsa_key.public_key()}

    async def main() -> None:
        async with httpx.AsyncClient(
            transport=capture_transport(seen),
            auth=OCISigner("t/u/f", rsa_key),
            base_url="https://example.com",
        ) as client:
            await client.get("/20220125/models/x?a=%20")
            await client.put("/20220125/models/x", content=b'{"k": 1}')
            await client.patch("/20220125/models/x", content=b"")

    asyncio.run(main())
    assert [r.method for r in seen] == ["GET", "PUT", "PATCH"]
    for request in seen:
        verify_oci_request(request.method, request.url.raw_path.decode(), request.headers, request.content, keys)


# --- Keys -------------------------------------------------------------------------------------


def test_load_private_key_inline_with_literal_newlines(rsa_key: rsa.RSAPrivateKey) -> None:
    one_line = pem_of(rsa_key).decode().strip().replace("\n", "\\n")
    assert "\n" not in one_line
    loaded = load_private_key(one_line)
    assert loaded.private_numbers() == rsa_key.private_numbers()
    assert load_private_key(pem_of(rsa_key)).private_numbers() == rsa_key.private_numbers()


@pytest.mark.parametrize(
    ("fmt", "passphrase", "lost_newline"),
    [
        (serialization.PrivateFormat.PKCS8, None, " "),  # Chromium's paste into the form's key field
        (serialization.PrivateFormat.PKCS8, None, ""),  # a paste that drops them
        (serialization.PrivateFormat.PKCS8, b"pw", " "),
        (serialization.PrivateFormat.TraditionalOpenSSL, b"pw", " "),  # Proc-Type / DEK-Info header lines
    ],
    ids=["pkcs8-spaces", "pkcs8-dropped", "pkcs8-encrypted-spaces", "traditional-encrypted-spaces"],
)
def test_load_private_key_pasted_into_a_one_line_field(rsa_key, fmt, passphrase, lost_newline) -> None:
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()
    pasted = pem.strip().replace("\n", lost_newline)
    assert "\n" not in pasted
    loaded = load_private_key(pasted, passphrase=passphrase.decode() if passphrase else None)
    assert loaded.private_numbers() == rsa_key.private_numbers()


def test_load_private_key_from_path_expands_user(
    rsa_key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "k.pem").write_bytes(pem_of(rsa_key))
    assert load_private_key(path="~/k.pem").private_numbers() == rsa_key.private_numbers()


def test_passphrase_protected_key(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    passphrase = "correct horse battery"
    path = tmp_path / "enc.pem"
    path.write_bytes(pem_of(rsa_key, passphrase.encode()))
    loaded = load_private_key(path=str(path), passphrase=passphrase)
    assert loaded.private_numbers() == rsa_key.private_numbers()

    with pytest.raises(OCIAuthError, match="pass_phrase is required"):
        load_private_key(path=str(path))


def test_bad_passphrase_error_leaks_nothing(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pem = pem_of(rsa_key, b"the-right-one")
    path = tmp_path / "enc.pem"
    path.write_bytes(pem)
    wrong = "Wr0ng-Passphrase-XYZ"
    for kwargs in ({"path": str(path)}, {"pem": pem}):
        with pytest.raises(OCIAuthError) as info:
            load_private_key(**kwargs, passphrase=wrong)
        message = str(info.value)
        assert "wrong passphrase or not a PEM RSA key" in message
        assert wrong not in message
        assert "BEGIN" not in message
        body_lines = [line for line in pem.decode().splitlines() if "-----" not in line]
        assert not any(line[:16] in message for line in body_lines)
        # Nothing from cryptography is chained into the traceback either.
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__ or info.value.__context__ is None
    with pytest.raises(OCIAuthError, match=re.escape(repr(str(path)))):
        load_private_key(path=str(path), passphrase=wrong)


def test_passphrase_for_unencrypted_key_is_ignored(rsa_key: rsa.RSAPrivateKey) -> None:
    # A pass_phrase inherited from DEFAULT must not break a profile whose key is not encrypted.
    assert load_private_key(pem_of(rsa_key), passphrase="unused").private_numbers() == rsa_key.private_numbers()


def test_public_key_and_garbage_are_refused(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(OCIAuthError, match="public key"):
        load_private_key(public_pem)
    with pytest.raises(OCIAuthError, match="not a PEM RSA key"):
        load_private_key("not a key at all")
    with pytest.raises(OCIAuthError, match="could not read"):
        load_private_key(path=str(tmp_path / "missing.pem"))
    with pytest.raises(OCIAuthError, match="no OCI private key"):
        load_private_key()


def test_non_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(OCIAuthError, match="not an RSA key"):
        load_private_key(ec_pem)
