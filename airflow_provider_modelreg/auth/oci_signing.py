"""OCI request signing for httpx: the signer, the identities it signs as, keys and credentials.

The floor below :mod:`airflow_provider_modelreg.auth.oci` (which builds credentials from a connection's
fields or ``~/.oci/config``) and :mod:`~airflow_provider_modelreg.auth.oci_principals` (the principals'
token exchanges): both read this module, it reads neither.

The signature follows Oracle's "Request Signatures" rules (draft-cavage-http-signatures-08) and is
byte-for-byte what the ``oci`` SDK's ``Signer`` produces; the SDK itself is never imported here (it is a
~500 MB install). Only the standard library, httpx and cryptography are used.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator, Mapping

__all__ = [
    "EMPTY_BODY_SHA256",
    "OCIAuthError",
    "OCICredentials",
    "OCISigner",
    "SigningIdentity",
    "load_private_key",
]

#: base64(SHA-256(b"")): OCI wants ``x-content-sha256`` even when a POST/PUT/PATCH has no body.
EMPTY_BODY_SHA256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

log = logging.getLogger(__name__)


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

    def __init__(
        self,
        key_id: str | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        *,
        identity: SigningIdentity | None = None,
        sign_host: bool = True,
    ) -> None:
        if identity is None:
            if not isinstance(private_key, rsa.RSAPrivateKey):
                raise TypeError("OCI request signing needs an RSA private key")
            identity = StaticIdentity(_checked_key_id(key_id or ""), private_key)
        self._identity = identity
        # The federation endpoint's own signing leaves out the host header (as the SDK's token request does).
        self._generic = _GENERIC_HEADERS if sign_host else ("date", "(request-target)")
        self._body = (*self._generic, "content-length", "content-type", "x-content-sha256")
        # Built once: every request reuses the same padding/hash objects and header prefixes, so the
        # per-request cost is the RSA operation plus a few string joins.
        self._padding = padding.PKCS1v15()
        self._hash = hashes.SHA256()
        self._prefixes_for: str | None = None
        self._prefix_generic = self._prefix_body = ""

    @property
    def key_id(self) -> str:
        return self._identity.key_id

    @property
    def identity(self) -> SigningIdentity:
        return self._identity

    def _prefixes(self, key_id: str) -> tuple[str, str]:
        if self._prefixes_for != key_id:  # a refreshed session token changes the keyId
            self._prefix_generic = self._header_prefix(key_id, self._generic)
            self._prefix_body = self._header_prefix(key_id, self._body)
            self._prefixes_for = key_id
        return self._prefix_generic, self._prefix_body

    def share_key(self) -> str:
        """Which credential this is (hashed), so clients using it can share connections."""
        return self._identity.share_key()

    @staticmethod
    def _header_prefix(key_id: str, names: tuple[str, ...]) -> str:
        return f'Signature version="1",keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",signature="'

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
        key_id, private_key = self._identity.pair()
        prefix_generic, prefix_body = self._prefixes(key_id)
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
            base = f"date: {date}\n(request-target): {verb} {url_raw_path}"
            if "host" in self._generic:
                base += f"\nhost: {host}"
            signing_string = (
                f"{base}\ncontent-length: {length}\ncontent-type: {content_type}\nx-content-sha256: {digest}"
            )
            prefix = prefix_body
        else:
            signing_string = f"date: {date}\n(request-target): {verb} {url_raw_path}"
            if "host" in self._generic:
                signing_string += f"\nhost: {host}"
            prefix = prefix_generic

        signature = private_key.sign(signing_string.encode("utf-8"), self._padding, self._hash)
        out["authorization"] = prefix + base64.b64encode(signature).decode("ascii") + '"'
        return out

    def _sign(self, request: httpx.Request) -> None:
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

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the final URL and body bytes of ``request`` and send it; on a 401, once more if the
        credential changed meanwhile (a session token refreshed in its file, a principal's new token)."""
        self._identity.prepare()
        self._sign(request)
        response = yield request
        if response.status_code == 401 and self._identity.after_unauthorized():
            log.info("OCI answered 401; signing once more with the re-read credential")
            request.headers.pop("authorization", None)
            self._sign(request)
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        yield from self.auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """As :meth:`auth_flow`, but whatever reads a file or calls a token service runs in a worker
        thread, never in the event loop (a triggerer runs thousands of waits on it)."""
        await request.aread()
        if self._identity.due():
            await asyncio.to_thread(self._identity.prepare)
        self._sign(request)
        response = yield request
        if response.status_code == 401 and await asyncio.to_thread(self._identity.after_unauthorized):
            log.info("OCI answered 401; signing once more with the re-read credential")
            request.headers.pop("authorization", None)
            self._sign(request)
            yield request


def _checked_key_id(key_id: str) -> str:
    # keyId goes between quotes in a header: refuse characters that would break out of it.
    if not key_id or any(c in key_id for c in '"\\\r\n'):
        raise ValueError("OCI keyId is empty or contains a quote, backslash or line break")
    return key_id


class SigningIdentity:
    """Who signs: a keyId and its RSA key, possibly changing over time (a refreshed session token).

    ``due()`` is a cheap check (no I/O) of whether ``prepare()`` has work to do; ``prepare()`` may read
    files or call a token service, so the async signer runs it in a worker thread.
    ``after_unauthorized()`` re-reads the credential after a 401 and says whether a resend may help.
    """

    key_id: str
    private_key: rsa.RSAPrivateKey

    def pair(self) -> tuple[str, rsa.RSAPrivateKey]:
        """keyId and key read together (an identity that refreshes swaps both at once)."""
        return self.key_id, self.private_key

    def due(self) -> bool:
        return False

    def prepare(self) -> None:
        return None

    def after_unauthorized(self) -> bool:
        return False

    def share_key(self) -> str:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(self.key_id.encode("utf-8") + b"\0" + public).hexdigest()

    def __repr__(self) -> str:
        shown = "ST$<session token>" if self.key_id.startswith("ST$") else self.key_id
        return f"{type(self).__name__}(key_id={shown!r})"


class StaticIdentity(SigningIdentity):
    """An API key: keyId ``tenancy/user/fingerprint``, never changing."""

    def __init__(self, key_id: str, private_key: rsa.RSAPrivateKey) -> None:
        self.key_id = key_id
        self.private_key = private_key


#: How often a signer looks at a session token file for a newer token (a stat, in a worker thread).
TOKEN_FILE_CHECK_SECONDS = 5.0


class SessionTokenFileIdentity(SigningIdentity):
    """keyId ``ST$<token>`` with the token read from a file that ``oci session refresh`` (or the platform)
    rewrites: re-read when the file changes (checked every :data:`TOKEN_FILE_CHECK_SECONDS`) and after a 401."""

    def __init__(self, path: str, private_key: rsa.RSAPrivateKey, *, clock: Callable[[], float] = time.monotonic):
        self.path = os.path.expanduser(path)
        self.private_key = private_key
        self._clock = clock
        self._lock = threading.Lock()
        self._stamp = _file_stamp(self.path)
        self._token = _read_session_token(self.path)
        self._checked = clock()

    @property
    def key_id(self) -> str:
        return f"ST${self._token}"

    @property
    def token(self) -> str:
        return self._token

    def share_key(self) -> str:
        # The token changes; the file and key do not: clients sharing one file share connections.
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(b"token-file\0" + self.path.encode() + b"\0" + public).hexdigest()

    def due(self) -> bool:
        return self._clock() - self._checked >= TOKEN_FILE_CHECK_SECONDS

    def prepare(self) -> None:
        if self.due():
            self._reload(force=False)

    def after_unauthorized(self) -> bool:
        return self._reload(force=True)

    def _reload(self, *, force: bool) -> bool:
        """Re-read the token when the file changed (or always when forced); True when the token changed."""
        with self._lock:
            self._checked = self._clock()
            stamp = _file_stamp(self.path)
            if not force and stamp == self._stamp:
                return False
            try:
                token = _read_session_token(self.path)
            except OCIAuthError as exc:
                log.warning("keeping the current OCI session token: %s", exc)
                return False
            self._stamp = stamp
            changed, self._token = token != self._token, token
            if changed:
                log.info("OCI session token re-read from %s", self.path)
            return changed


def _file_stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


_ONE_LINE_PEM = re.compile(rb"^(-----BEGIN [A-Z0-9 ]+-----)(.*?)(-----END [A-Z0-9 ]+-----)$", re.DOTALL)


def _normalise_pem(pem: str | bytes) -> bytes:
    """Accept PEM pasted into a one-line form field: newlines typed as literal ``\\n``, or lost in the
    paste (Chromium turns each into a space in the Airflow form's key field). ``cryptography`` reads a
    one-line PKCS#8 key as it is, but not an encrypted traditional key (``Proc-Type``/``DEK-Info`` header
    lines), so the lines are put back; a paste that dropped the newlines of those headers stays unreadable."""
    data = pem.encode("utf-8") if isinstance(pem, str) else bytes(pem)
    data = data.strip()
    if b"\\n" in data and b"-----BEGIN" in data:
        data = data.replace(b"\\r\\n", b"\n").replace(b"\\n", b"\n")
    data = data.replace(b"\r\n", b"\n")
    one_line = _ONE_LINE_PEM.match(data) if b"\n" not in data else None
    if one_line:
        begin, body, end = one_line.groups()
        tokens = body.split()
        headers = []  # an encrypted traditional key's "Proc-Type: 4,ENCRYPTED" and "DEK-Info: ..." lines
        while len(tokens) >= 2 and tokens[0].endswith(b":"):
            headers.append(tokens[0] + b" " + tokens[1])
            tokens = tokens[2:]
        base64_body = b"".join(tokens)
        lines = [begin, *headers, *([b""] if headers else [])]
        lines += [base64_body[i : i + 64] for i in range(0, len(base64_body), 64)] + [end]
        data = b"\n".join(lines)
    return data


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
    # Loaded once per credential (an RSA key takes ~30 ms to load): keyed by digests, never the secrets.
    cache_key = hashlib.sha256(data).hexdigest() + ":" + hashlib.sha256(password or b"").hexdigest()
    with _KEY_CACHE_LOCK:
        cached = _KEY_CACHE.get(cache_key)
    if cached is not None:
        return cached
    key = _parse_private_key(data, password, source)
    with _KEY_CACHE_LOCK:
        if len(_KEY_CACHE) >= _KEY_CACHE_SIZE:
            _KEY_CACHE.pop(next(iter(_KEY_CACHE)))
        _KEY_CACHE[cache_key] = key
    return key


_KEY_CACHE: dict[str, rsa.RSAPrivateKey] = {}
_KEY_CACHE_LOCK = threading.Lock()
_KEY_CACHE_SIZE = 64


def _parse_private_key(data: bytes, password: bytes | None, source: str) -> rsa.RSAPrivateKey:
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
    auth_type: str = "api_key"
    identity: SigningIdentity | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        # keyId of a session token embeds the token itself, so it is masked too.
        key_id = "ST$<session token>" if self.key_id.startswith("ST$") else self.key_id
        return (
            f"OCICredentials(auth_type={self.auth_type!r}, tenancy={self.tenancy!r}, user={self.user!r}, "
            f"fingerprint={self.fingerprint!r}, region={self.region!r}, key_id={key_id!r})"
        )

    def signer(self) -> OCISigner:
        """An httpx auth that signs with these credentials (following a refreshed token, if any)."""
        if self.identity is not None:
            return OCISigner(identity=self.identity)
        return OCISigner(self.key_id, self.private_key)


def _clean(value: Any) -> str | None:
    # Airflow form fields arrive as "" when left blank: treat blank like absent.
    if value is None:
        return None
    text = str(value).strip()
    return text or None


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
