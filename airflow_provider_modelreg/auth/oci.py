"""OCI request signing for httpx, plus loading OCI credentials from fields or ``~/.oci/config``.

The signature follows Oracle's "Request Signatures" rules (draft-cavage-http-signatures-08) and is
byte-for-byte what the ``oci`` SDK's ``Signer`` produces; the SDK itself is never imported here (it is a
~500 MB install). Only the standard library, httpx and cryptography are used.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import email.utils
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

__all__ = [
    "EMPTY_BODY_SHA256",
    "OCIAuthError",
    "OCICredentials",
    "OCISigner",
    "credentials_from_fields",
    "load_private_key",
    "read_oci_config",
]

#: base64(SHA-256(b"")): OCI wants ``x-content-sha256`` even when a POST/PUT/PATCH has no body.
EMPTY_BODY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

DEFAULT_CONFIG_FILE = "~/.oci/config"
DEFAULT_PROFILE = "DEFAULT"

# Signed header lists, in the order OCI (and the SDK) put them in the signing string.
_GENERIC_HEADERS = ("date", "(request-target)", "host")
_BODY_HEADERS = (*_GENERIC_HEADERS, "content-length", "content-type", "x-content-sha256")
_BODY_METHODS = frozenset({"post", "put", "patch"})
_NO_BODY_METHODS = frozenset({"get", "head", "delete"})


class OCIAuthError(ValueError):
    """Bad or incomplete OCI credentials. Messages name fields and files, never secret values."""


class OCISigner(httpx.Auth):
    """httpx auth that signs each request the way OCI requires; serves sync and async clients alike."""

    # httpx reads a streamed body before calling auth_flow, so the body hash is always computable.
    requires_request_body = True

    def __init__(self, key_id: str, private_key: rsa.RSAPrivateKey) -> None:
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise TypeError("OCI request signing needs an RSA private key")
        # keyId goes between quotes in a header: refuse characters that would break out of it.
        if not key_id or any(c in key_id for c in '"\\\r\n'):
            raise ValueError("OCI keyId is empty or contains a quote, backslash or line break")
        self.key_id = key_id
        self._private_key = private_key
        # Built once: every request reuses the same padding/hash objects and header prefixes, so the
        # per-request cost is the RSA operation plus a few string joins.
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()
        self._prefix_generic = self._header_prefix(_GENERIC_HEADERS)
        self._prefix_body = self._header_prefix(_BODY_HEADERS)

    def share_key(self) -> str:
        """Which credential this is (keyId and public key, hashed), so clients using it can share connections."""
        public = self._private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(self.key_id.encode("utf-8") + b"\0" + public).hexdigest()

    def _header_prefix(self, names: tuple[str, ...]) -> str:
        return (
            f'Signature version="1",keyId="{self.key_id}",algorithm="rsa-sha256",'
            f'headers="{" ".join(names)}",signature="'
        )

    def __repr__(self) -> str:
        # A session-token keyId embeds the token: show only its kind.
        shown = "ST$<session token>" if self.key_id.startswith("ST$") else self.key_id
        return f"OCISigner(key_id={shown!r})"

    def sign_headers(
        self,
        method: str,
        url_raw_path: str,
        host: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> dict[str, str]:
        """Return the headers to set on a request so that OCI accepts it (``authorization`` included).

        ``url_raw_path`` is the path and query exactly as sent (percent-encoding kept), ``host`` the Host
        header value, ``headers`` the request's current headers (any case) and ``body`` its final bytes.
        """
        verb = method.lower()
        if verb in _BODY_METHODS:
            sign_body = True
        elif verb in _NO_BODY_METHODS:
            sign_body = False
        else:
            raise ValueError(f"OCI request signing does not support the HTTP method {method!r}")

        present = {k.lower(): v for k, v in headers.items()}
        out: dict[str, str] = {}
        date = present.get("date")
        if date is None:
            date = out["date"] = email.utils.formatdate(usegmt=True)

        if sign_body:
            content_type = present.get("content-type")
            if content_type is None:
                content_type = out["content-type"] = "application/json"
            # Always hash the bytes actually sent: a stale caller-supplied hash would only earn a 401.
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") if body else EMPTY_BODY_SHA256
            length = str(len(body))
            out["content-length"] = length
            out["x-content-sha256"] = digest
            signing_string = (
                f"date: {date}\n(request-target): {verb} {url_raw_path}\nhost: {host}\n"
                f"content-length: {length}\ncontent-type: {content_type}\nx-content-sha256: {digest}"
            )
            prefix = self._prefix_body
        else:
            signing_string = f"date: {date}\n(request-target): {verb} {url_raw_path}\nhost: {host}"
            prefix = self._prefix_generic

        signature = self._private_key.sign(signing_string.encode("utf-8"), self._padding, self._hash)
        out["authorization"] = prefix + base64.b64encode(signature).decode("ascii") + '"'
        return out

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the final URL and body bytes of ``request``, then send it once."""
        # Sign the Host header actually sent (httpx drops default ports, keeps others: "host:8443").
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        new_headers = self.sign_headers(
            request.method,
            request.url.raw_path.decode("ascii"),
            host,
            request.headers,
            request.content,
        )
        if "x-content-sha256" in new_headers:
            # The body is fully read, so send it with the signed Content-Length rather than chunked.
            request.headers.pop("transfer-encoding", None)
        request.headers.update(new_headers)
        yield request


def _normalise_pem(pem: str | bytes) -> bytes:
    """Accept PEM pasted into a one-line form field, where newlines became literal ``\\n``."""
    data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
    data = data.strip()
    if b"\\n" in data and b"-----BEGIN" in data:
        data = data.replace(b"\\r\\n", b"\n").replace(b"\\n", b"\n")
    return data.replace(b"\r\n", b"\n")


def load_private_key(
    pem: str | bytes | None = None,
    path: str | None = None,
    passphrase: str | None = None,
) -> rsa.RSAPrivateKey:
    """Load an RSA private key from inline PEM or a PEM file (``~`` expanded), optionally encrypted.

    Errors say where the key came from and what went wrong, never the key or the passphrase.
    """
    if pem and path:
        raise OCIAuthError("give either an inline private key or a key file path, not both")
    if pem:
        source = "the inline private_key field"
        data = _normalise_pem(pem)
    elif path:
        expanded = os.path.expanduser(path)
        source = f"key_file {expanded!r}"
        try:
            with open(expanded, "rb") as fh:
                data = _normalise_pem(fh.read())
        except OSError as exc:
            raise OCIAuthError(f"could not read the OCI private key {source}: {exc.strerror}") from None
    else:
        raise OCIAuthError("no OCI private key given: set private_key (inline PEM) or key_file")

    password = passphrase.encode("utf-8") if passphrase else None
    try:
        key = _load_pem(data, password, source)
    except TypeError:
        if password is None:
            raise OCIAuthError(f"the OCI private key from {source} is encrypted: a pass_phrase is required") from None
        # A pass_phrase inherited from the DEFAULT profile may not belong to this key (the SDK does the
        # same): an unencrypted key loads without it.
        key = _load_pem(data, None, source)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise OCIAuthError(f"the OCI private key from {source} is not an RSA key (OCI API keys are RSA)")
    return key


def _load_pem(data: bytes, password: bytes | None, source: str) -> Any:
    """``load_pem_private_key`` with its ValueError turned into a message free of secrets.

    TypeError (passphrase given/needed mismatch) passes through for the caller to handle.
    """
    try:
        return serialization.load_pem_private_key(data, password)
    except (ValueError, UnsupportedAlgorithm):
        pass
    # Raised outside the except block so no cryptography exception rides along as context.
    if _looks_like_public_key(data):
        raise OCIAuthError(
            f"could not load the OCI private key from {source}: it is a public key, the private key is needed"
        )
    raise OCIAuthError(f"could not load the OCI private key from {source}: wrong passphrase or not a PEM RSA key")


def _looks_like_public_key(data: bytes) -> bool:
    try:
        serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return False
    return True


@dataclass(frozen=True)
class OCICredentials:
    """Everything needed to sign OCI requests. ``repr`` shows no key material and no session token."""

    tenancy: str
    user: str | None
    fingerprint: str | None
    region: str | None
    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False)

    def __repr__(self) -> str:
        # keyId of a session token embeds the token itself, so it is masked too.
        key_id = "ST$<session token>" if self.key_id.startswith("ST$") else self.key_id
        return (
            f"OCICredentials(tenancy={self.tenancy!r}, user={self.user!r}, "
            f"fingerprint={self.fingerprint!r}, region={self.region!r}, key_id={key_id!r})"
        )

    def signer(self) -> OCISigner:
        """An httpx auth that signs with these credentials."""
        return OCISigner(self.key_id, self.private_key)


def read_oci_config(path: str = DEFAULT_CONFIG_FILE, profile: str = DEFAULT_PROFILE) -> dict[str, str]:
    """Read one profile of an OCI config file; values of ``[DEFAULT]`` are inherited, as in the SDK."""
    expanded = os.path.expanduser(path)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(expanded, encoding="utf-8") as fh:
            parser.read_file(fh, source=expanded)
    except OSError as exc:
        raise OCIAuthError(
            f"could not read OCI config file {expanded!r} (profile {profile!r}): {exc.strerror}"
        ) from None
    except configparser.Error as exc:
        # configparser messages quote the offending line, which may hold a pass_phrase: give its number.
        line = getattr(exc, "lineno", None)
        where = f" near line {line}" if line else ""
        raise OCIAuthError(f"could not parse OCI config file {expanded!r}{where}: {type(exc).__name__}") from None
    # configparser always "has" DEFAULT; it only counts as a profile when it holds something.
    if profile == parser.default_section:
        if not parser.defaults():
            raise OCIAuthError(f"profile {profile!r} not found in OCI config file {expanded!r}")
        return dict(parser.defaults())
    if not parser.has_section(profile):
        raise OCIAuthError(f"profile {profile!r} not found in OCI config file {expanded!r}")
    return dict(parser[profile])


# Connection fields that may override a config-file profile, with their config-file names.
_FIELD_TO_CONFIG_KEY = {
    "tenancy": "tenancy",
    "user": "user",
    "fingerprint": "fingerprint",
    "key_file": "key_file",
    "pass_phrase": "pass_phrase",
    "region": "region",
    "security_token_file": "security_token_file",
    "private_key": "private_key",
}


def _clean(value: Any) -> str | None:
    # Airflow form fields arrive as "" when left blank: treat blank like absent.
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def credentials_from_fields(fields: Mapping[str, Any]) -> OCICredentials:
    """Build credentials from flat connection fields, optionally on top of a config-file profile.

    Keys: tenancy, user, fingerprint, private_key (inline PEM), key_file, pass_phrase, region,
    config_file, profile, security_token_file. Explicit fields win over the profile's values.
    """
    merged: dict[str, str] = {}
    config_file = _clean(fields.get("config_file"))
    profile = _clean(fields.get("profile"))
    if config_file or profile:
        merged.update(read_oci_config(config_file or DEFAULT_CONFIG_FILE, profile or DEFAULT_PROFILE))
        # key_content is not allowed in a config file (the SDK refuses it too); only the path is used.
        merged.pop("private_key", None)
    for name, key in _FIELD_TO_CONFIG_KEY.items():
        value = _clean(fields.get(name))
        if value is not None:
            merged[key] = value

    tenancy = _clean(merged.get("tenancy"))
    user = _clean(merged.get("user"))
    fingerprint = _clean(merged.get("fingerprint"))
    region = _clean(merged.get("region"))
    inline_key = merged.get("private_key")
    key_file = _clean(merged.get("key_file"))
    token_file = _clean(merged.get("security_token_file"))

    missing: list[str] = []
    token: str | None = None
    if token_file:
        token = _read_session_token(token_file)
        # A session profile normally names its tenancy; if not, the token's own claim says it.
        tenancy = tenancy or _tenancy_from_token(token)
        if not tenancy:
            missing.append("tenancy")
    else:
        missing.extend(name for name, value in (("tenancy", tenancy), ("user", user)) if not value)
        if not fingerprint:
            missing.append("fingerprint")
    if not inline_key and not key_file:
        missing.append("one of private_key/key_file")
    if missing:
        mode = "session-token" if token_file else "API-key"
        raise OCIAuthError(f"OCI {mode} credentials are incomplete: missing {', '.join(missing)}")

    # An inline key wins over a key file (as key_content does in the SDK), e.g. a key pasted into the
    # connection on top of a profile that names a file.
    private_key = load_private_key(
        pem=inline_key or None,
        path=None if inline_key else key_file,
        passphrase=_clean(merged.get("pass_phrase")),
    )
    key_id = f"ST${token}" if token is not None else f"{tenancy}/{user}/{fingerprint}"
    return OCICredentials(
        tenancy=tenancy or "",
        user=user,
        fingerprint=fingerprint,
        region=region,
        key_id=key_id,
        private_key=private_key,
    )


def _read_session_token(path: str) -> str:
    expanded = os.path.expanduser(path)
    try:
        with open(expanded, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise OCIAuthError(f"could not read OCI security_token_file {expanded!r}: {exc.strerror}") from None
    if not token:
        raise OCIAuthError(f"OCI security_token_file {expanded!r} is empty")
    if any(c in token for c in '"\\\r\n'):
        raise OCIAuthError(f"OCI security_token_file {expanded!r} does not hold a single-line token")
    return token


def _tenancy_from_token(token: str) -> str | None:
    """The ``tenant`` claim of a session JWT, read without verification (it only fills a field)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    tenant = claims.get("tenant") if isinstance(claims, dict) else None
    return tenant if isinstance(tenant, str) and tenant else None
