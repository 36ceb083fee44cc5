"""Fakes of the identity services OCI-hosted code reaches for a session token, as Oracle's SDK sees them.

* The instance metadata service v2 (``/opc/v2``): ``instance/region`` and ``identity/{cert,key,
  intermediate}.pem``, answering only requests carrying ``Authorization: Bearer Oracle`` (IMDS v2's rule).
  The leaf certificate is issued by a real (throw-away) CA through an intermediate, its subject carrying
  ``OU=opc-tenant:<tenancy>`` as the SDK's ``auth_utils.get_tenancy_id_from_certificate`` expects.
* The federation endpoint (``POST /v1/x509``): checks the request is signed (keyId
  ``<tenancy>/fed-x509/<SHA-1 fingerprint of the leaf>``, headers ``date (request-target) content-length
  content-type x-content-sha256``, no host, as the SDK's ``AuthTokenRequestSigner``) with the key of the
  leaf certificate it carries, that the leaf chains to the fake CA through the intermediate it carries and
  names the tenancy of the keyId, then answers ``{"token": <JWT>}``.
* OKE's proxymux token exchange (``POST /resourcePrincipalSessionTokens``): a registered service-account
  token as ``Authorization: Bearer``, ``{"podKey": <public key>}``, answered with base64 of
  ``{"token": "ST$<JWT>"}`` (the SDK strips the ``ST$``).

Every session token issued is registered with ``state.oci_public_keys`` as ``ST$<token>`` -> the session
public key sent with it, so the sandbox's OCI services accept requests signed with it (as a real OCI front
door learns the key from the token). Knobs (``state.extra``): :data:`TOKEN_SECONDS` (lifetime of issued
tokens), :data:`SERVICE_ACCOUNT_TOKENS` (the OKE service-account tokens accepted). What was asked is kept
in ``state.extra[REQUESTS]`` (per endpoint: the headers and body keys, never a secret) and counted.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from airflow_provider_modelreg.sandbox.oci_common import oci_error
from airflow_provider_modelreg.sandbox.oci_signature import SignatureRejected, verify_oci_request
from airflow_provider_modelreg.sandbox.state import SandboxState

SERVICE = "oci_identity"
TENANCY = "ocid1.tenancy.oc1..sandboxinstancetenancy"
INSTANCE = "ocid1.instance.oc1.iad.sandboxinstance"
COMPARTMENT = "ocid1.compartment.oc1..sandboxinstancecompartment"
#: What ``/opc/v2/instance/region`` answers: a short name, as older regions' instances report it.
REGION = "iad"

TOKEN_SECONDS = "oci_identity.token_seconds"
SERVICE_ACCOUNT_TOKENS = "oci_identity.service_account_tokens"
REQUESTS = "oci_identity.requests"
DEFAULT_TOKEN_SECONDS = 1200.0  # an instance principal token lives 20 minutes


@dataclass(frozen=True)
class IdentityAuthority:
    """A root CA, an intermediate and an instance's leaf certificate with its key, all PEM."""

    ca_cert: x509.Certificate
    ca_key: rsa.RSAPrivateKey
    intermediate_pem: bytes
    leaf_pem: bytes
    leaf_key_pem: bytes

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: x509.Name, issuer: x509.Name, public: Any, signing_key: rsa.RSAPrivateKey, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signing_key, hashes.SHA256())
    )


def make_authority(tenancy: str = TENANCY) -> IdentityAuthority:
    """A fresh CA -> intermediate -> leaf chain (three RSA keys: about a tenth of a second)."""
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox OCI identity root")])
    mid_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox OCI identity intermediate")])
    leaf_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, INSTANCE),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "opc-certtype:instance"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-compartment:{COMPARTMENT}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-instance:{INSTANCE}"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-tenant:{tenancy}"),
        ]
    )
    root = _certificate(root_name, root_name, keys[0].public_key(), keys[0], ca=True)
    mid = _certificate(mid_name, root_name, keys[1].public_key(), keys[0], ca=True)
    leaf = _certificate(leaf_name, mid_name, keys[2].public_key(), keys[1], ca=False)
    return IdentityAuthority(
        ca_cert=root,
        ca_key=keys[0],
        intermediate_pem=mid.public_bytes(serialization.Encoding.PEM),
        leaf_pem=leaf.public_bytes(serialization.Encoding.PEM),
        leaf_key_pem=keys[2].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ),
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _jwt(claims: dict[str, Any], key: rsa.RSAPrivateKey) -> str:
    """An RS256 JWT signed by the fake CA (the SDK decodes it without checking the signature)."""
    head = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "sandbox"}).encode())
    body = _b64url(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64url(signature)}"


def _der_from_sanitised(value: Any, what: str) -> bytes:
    # The SDK sends PEM bodies with the armour lines and newlines taken out.
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64 DER") from None


def _fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA1()))  # SHA-1: OCI's keyId form


def _tenancy_of(cert: x509.Certificate) -> str | None:
    for attribute in cert.subject:
        value = str(attribute.value)
        for prefix in ("opc-tenant:", "opc-identity:"):
            if value.startswith(prefix):
                return value[len(prefix) :]
    return None


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()
    lock = threading.Lock()
    holder: list[IdentityAuthority] = []

    def authority() -> IdentityAuthority:
        # Made on first use, then kept for the sandbox's life (a reset does not rotate the instance's identity).
        with lock:
            if not holder:
                holder.append(make_authority())
            return holder[0]

    def record(endpoint: str, request: Request, body_keys: list[str] | None = None) -> None:
        state.bump(f"{SERVICE}.{endpoint}")
        entry = {"headers": sorted(k.lower() for k in request.headers), "body_keys": body_keys}
        auth = request.headers.get("authorization", "")
        if auth.startswith("Signature "):
            entry["signature_params"] = {
                k: v.strip('"') for k, v in (p.split("=", 1) for p in auth[10:].split(",")) if k in ("keyId", "headers")
            }
        with state.lock:
            state.extra.setdefault(REQUESTS, {}).setdefault(endpoint, []).append(entry)

    def imds_refusal(request: Request) -> Response | None:
        if request.headers.get("authorization") != "Bearer Oracle":
            # IMDS v2 answers requests without the header with 401 (v1's paths are not served).
            return PlainTextResponse("Unauthorized: IMDS v2 requires 'Authorization: Bearer Oracle'", 401)
        return None

    @api.get("/opc/v2/instance/region", include_in_schema=False)
    async def imds_region(request: Request) -> Response:
        record("imds.region", request)
        return imds_refusal(request) or PlainTextResponse(REGION)

    @api.get("/opc/v2/identity/{name}", include_in_schema=False)
    async def imds_identity(name: str, request: Request) -> Response:
        record(f"imds.{name}", request)
        if refusal := imds_refusal(request):
            return refusal
        chain = authority()
        served = {"cert.pem": chain.leaf_pem, "key.pem": chain.leaf_key_pem, "intermediate.pem": chain.intermediate_pem}
        if name not in served:
            return PlainTextResponse("Not Found", 404)
        return Response(served[name], media_type="text/plain")

    def issue(session_public_der: bytes, claims: dict[str, Any]) -> str:
        public = serialization.load_der_public_key(session_public_der)
        if not isinstance(public, rsa.RSAPublicKey):
            raise ValueError("publicKey is not an RSA public key")
        now = int(time.time())
        lifetime = int(float(state.extra.get(TOKEN_SECONDS, DEFAULT_TOKEN_SECONDS)))
        jwk_n = _b64url(public.public_numbers().n.to_bytes((public.key_size + 7) // 8, "big"))
        token = _jwt(
            {
                **claims,
                "iss": "authService.oracle.com",
                "iat": now,
                "exp": now + lifetime,
                "jti": secrets.token_hex(8),
                "jwk": json.dumps({"kty": "RSA", "alg": "RS256", "e": "AQAB", "n": jwk_n}),
            },
            authority().ca_key,
        )
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with state.lock:
            state.oci_public_keys[f"ST${token}"] = pem.decode()
        return token

    @api.post("/v1/x509", include_in_schema=False)
    async def federation(request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError:
            record("federation", request)
            return oci_error(400, "InvalidParameter", "The request body is not a JSON object", request)
        record("federation", request, sorted(payload))
        try:
            leaf = x509.load_der_x509_certificate(_der_from_sanitised(payload.get("certificate"), "certificate"))
            intermediates = [
                x509.load_der_x509_certificate(_der_from_sanitised(c, "intermediateCertificates[]"))
                for c in payload.get("intermediateCertificates") or []
            ]
            session_public = _der_from_sanitised(payload.get("publicKey"), "publicKey")
        except ValueError as exc:
            return oci_error(400, "InvalidParameter", str(exc), request)
        tenancy = _tenancy_of(leaf)
        key_id = f"{tenancy}/fed-x509/{_fingerprint(leaf)}"
        try:
            verify_oci_request(
                "POST", request.url.path, request.headers, body, {key_id: leaf.public_key()}, sign_host=False
            )
        except SignatureRejected as exc:
            state.bump(f"{SERVICE}.rejected")
            return oci_error(401, exc.code, exc.message, request)
        if not _chains_to(leaf, intermediates, authority().ca_cert):
            state.bump(f"{SERVICE}.rejected")
            return oci_error(401, "NotAuthenticated", "The certificate is not issued by a trusted authority", request)
        try:
            token = issue(session_public, {"sub": INSTANCE, "tenant": tenancy, "ptype": "instance"})
        except ValueError as exc:
            return oci_error(400, "InvalidParameter", str(exc), request)
        return JSONResponse({"token": token})

    @api.post("/resourcePrincipalSessionTokens", include_in_schema=False)
    async def proxymux(request: Request) -> Response:
        body = await request.body()
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        record("proxymux", request, sorted(payload) if isinstance(payload, dict) else None)
        bearer = request.headers.get("authorization", "")
        accepted = state.extra.get(SERVICE_ACCOUNT_TOKENS) or []
        if not bearer.startswith("Bearer ") or bearer[7:] not in accepted:
            state.bump(f"{SERVICE}.rejected")
            return PlainTextResponse("Unauthorized", 401)
        if not isinstance(payload, dict):
            return PlainTextResponse("Bad Request: the body is not a JSON object", 400)
        try:
            token = issue(
                _der_from_sanitised(payload.get("podKey"), "podKey"),
                {"sub": "ocid1.workload.oc1..sandboxpod", "res_tenant": TENANCY, "ptype": "workload"},
            )
        except ValueError as exc:
            return PlainTextResponse(f"Bad Request: {exc}", 400)
        answer = base64.b64encode(json.dumps({"token": f"ST${token}"}).encode()).decode("ascii")
        return PlainTextResponse(answer)

    return api


def _chains_to(leaf: x509.Certificate, intermediates: list[x509.Certificate], root: x509.Certificate) -> bool:
    """Whether ``leaf`` is issued by one of ``intermediates`` that ``root`` issued (or by ``root`` itself)."""
    for issuer in [*intermediates, root]:
        try:
            leaf.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if issuer is root:
            return True
        try:
            issuer.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False
