"""Server-side check of OCI request signatures, for the sandbox's OCI-flavoured routes.

It applies the rules OCI's front door applies (required signed headers per method, body hash and length,
5-minute clock skew, RSA-SHA256 signature) so that a client that passes here signs like the ``oci`` SDK.
Only the standard library and cryptography are used.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import re
import time
from datetime import timezone
from typing import TYPE_CHECKING, Any, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["NOT_AUTHENTICATED_MESSAGE", "PublicKeyEntry", "SignatureRejected", "verify_oci_request"]

NOT_AUTHENTICATED_MESSAGE = "The required information to complete authentication was not provided or was incorrect."

#: A public key, or a callable ``(key_id) -> public key | None`` (e.g. to resolve session tokens).
PublicKeyEntry: TypeAlias = "rsa.RSAPublicKey | Callable[[str], rsa.RSAPublicKey | None]"

_GENERIC_REQUIRED = ("date", "(request-target)", "host")
_BODY_REQUIRED = (*_GENERIC_REQUIRED, "content-length", "content-type", "x-content-sha256")
_BODY_METHODS = frozenset({"post", "put", "patch"})
_NO_BODY_METHODS = frozenset({"get", "head", "delete"})

# One `name="value"` parameter of the Signature scheme, followed by a comma or the end.
_PARAM = re.compile(r'\s*([A-Za-z]+)="([^"]*)"\s*(?:,|$)')


class SignatureRejected(Exception):
    """The request is not authenticated; the sandbox answers it with 401 ``{code, message}``."""

    status_code = 401

    def __init__(self, reason: str, code: str = "NotAuthenticated") -> None:
        self.code = code
        self.reason = reason
        self.message = f"{NOT_AUTHENTICATED_MESSAGE} ({reason})"
        super().__init__(self.message)


def _normalise_headers(headers: Mapping[str, str] | Any) -> dict[str, str]:
    """Lower-case names; repeated headers joined with ", " (draft-cavage's rule for multiple values)."""
    # Starlette's Headers keeps repeats in multi_items(); a dict or httpx.Headers has one value per name.
    items = headers.multi_items() if hasattr(headers, "multi_items") else headers.items()
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "signature" or not rest.strip():
        raise SignatureRejected("Authorization header is not of the form 'Signature keyId=...'")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None:
            raise SignatureRejected("malformed Authorization header parameters")
        name, param_value = match.group(1), match.group(2)
        if name in params:
            raise SignatureRejected(f"Authorization parameter {name!r} given twice")
        params[name] = param_value
        pos = match.end()
    return params


def _resolve_key(key_id: str, public_keys: Mapping[str, PublicKeyEntry]) -> rsa.RSAPublicKey:
    entry = public_keys.get(key_id)
    # A "ST$" entry resolves any session token the exact map does not list.
    if entry is None and key_id.startswith("ST$"):
        entry = public_keys.get("ST$")
    if entry is not None and not isinstance(entry, rsa.RSAPublicKey) and callable(entry):
        entry = entry(key_id)
    if entry is None:
        raise SignatureRejected("unknown keyId")
    if not isinstance(entry, rsa.RSAPublicKey):
        raise SignatureRejected("keyId does not map to an RSA public key")
    return entry


def verify_oci_request(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    public_keys: Mapping[str, PublicKeyEntry],
    now: float | None = None,
    max_skew_seconds: float = 300,
    *,
    sign_host: bool = True,
) -> str:
    """Check one request's OCI signature and return its keyId; raise :class:`SignatureRejected` if bad.

    ``raw_path`` is the path and query exactly as received (percent-encoding kept). ``headers`` may be a
    dict or a Starlette/httpx Headers object, in any case. ``public_keys`` maps keyId to a public key or
    to a callable resolving it; a ``"ST$"`` entry serves session-token keyIds not listed by name.
    ``sign_host=False`` is the federation endpoint's rule: its token requests sign no host header.
    """
    verb = method.lower()
    if verb in _BODY_METHODS:
        required = _BODY_REQUIRED
    elif verb in _NO_BODY_METHODS:
        required = _GENERIC_REQUIRED
    else:
        raise SignatureRejected(f"HTTP method {method!r} cannot be signed")
    if not sign_host:
        required = tuple(name for name in required if name != "host")

    present = _normalise_headers(headers)
    authorization = present.get("authorization")
    if not authorization:
        raise SignatureRejected("missing Authorization header")
    params = _parse_authorization(authorization)

    key_id = params.get("keyId")
    signature_b64 = params.get("signature")
    signed_list = params.get("headers")
    if not key_id or not signature_b64 or not signed_list:
        raise SignatureRejected("Authorization header lacks keyId, headers or signature")
    if params.get("algorithm", "rsa-sha256") != "rsa-sha256":
        raise SignatureRejected("unsupported signature algorithm (only rsa-sha256)")
    if params.get("version", "1") != "1":
        raise SignatureRejected("unsupported signature version")
    public_key = _resolve_key(key_id, public_keys)

    signed = signed_list.lower().split()
    signed_set = set(signed)
    for name in required:
        # OCI accepts x-date in place of date (browsers cannot set Date).
        if name == "date" and "x-date" in signed_set:
            continue
        if name not in signed_set:
            raise SignatureRejected(f"required header {name!r} is not signed")

    lines = []
    for name in signed:
        if name == "(request-target)":
            value = f"{verb} {raw_path}"
        else:
            header_value = present.get(name)
            if header_value is None:
                raise SignatureRejected(f"signed header {name!r} is missing from the request")
            value = header_value
        lines.append(f"{name}: {value}")

    date_name = "date" if "date" in signed_set else "x-date"
    _check_date(present.get(date_name), date_name, time.time() if now is None else now, max_skew_seconds)
    _check_body(present, body)

    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected("signature is not valid base64") from None
    try:
        public_key.verify(signature, "\n".join(lines).encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise SignatureRejected("signature does not match the request") from None
    return key_id


def _check_date(value: str | None, name: str, now: float, max_skew_seconds: float) -> None:
    if value is None:
        raise SignatureRejected(f"missing {name} header")
    try:
        sent = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise SignatureRejected(f"{name} header is not an HTTP date") from None
    if sent.tzinfo is None:  # "-0000" parses naive; HTTP dates are GMT.
        sent = sent.replace(tzinfo=timezone.utc)
    if abs(now - sent.timestamp()) > max_skew_seconds:
        raise SignatureRejected(f"{name} is more than {max_skew_seconds:g} seconds away from the server clock")


def _check_body(present: Mapping[str, str], body: bytes) -> None:
    # Checked whenever sent (signed or not): a header that lies about the body is never acceptable.
    declared_hash = present.get("x-content-sha256")
    if declared_hash is not None:
        actual = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        if declared_hash.strip() != actual:
            raise SignatureRejected("x-content-sha256 does not match the body")
    declared_length = present.get("content-length")
    if declared_length is not None:
        try:
            length = int(declared_length.strip())
        except ValueError:
            raise SignatureRejected("content-length is not a number") from None
        if length != len(body):
            raise SignatureRejected("content-length does not match the body")
