"""OCI principals: credentials that the platform Airflow runs on hands out (no user API key).

All three follow the ``oci`` SDK (read, not imported: the SDK stays optional) on httpx and cryptography,
through the project's one HTTP layer (retries, request ids, :class:`ServiceError`):

* ``resource_principal`` reads RPv2.2's variables: ``OCI_RESOURCE_PRINCIPAL_VERSION`` 2.2,
  ``OCI_RESOURCE_PRINCIPAL_RPST`` and ``OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM`` (each an absolute path to a file,
  or the value itself), ``OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE`` (optional, likewise) and
  ``OCI_RESOURCE_PRINCIPAL_REGION``. A token given as a file is re-read when it changes and after a 401.
* ``instance_principal`` (the SDK's ``InstancePrincipalsSecurityTokenSigner``): the instance's leaf
  certificate, its key and the intermediate certificate from the instance metadata service v2 (header
  ``Authorization: Bearer Oracle``), a fresh RSA session key, and a call to the federation endpoint
  ``https://auth.<region>.<domain>/v1/x509`` signed with the leaf key (keyId
  ``<tenancy>/fed-x509/<SHA-1 fingerprint>``, no host header) that answers a session token. Requests are
  then signed ``ST$<token>`` with the session key; a new key and token are fetched 60 s before the token
  expires (the SDK's jitter) and once after a 401. The metadata service is ``metadata_base_url`` (extra),
  else ``OCI_METADATA_BASE_URL`` (the SDK's variable), else 169.254.169.254 then its IPv6 address; the
  federation endpoint is ``federation_endpoint`` (extra, the SDK's argument), else derived from the region
  the metadata service names (a connection's ``region`` overrides it for the service endpoints).
* ``workload_identity`` (OKE; the SDK's ``OkeWorkloadIdentityResourcePrincipalSigner``): the pod's
  service-account token (``service_account_token_file``, default the kubelet's projected token, re-read at
  every exchange as the kubelet rotates it) is exchanged with the cluster's proxymux
  ``https://$KUBERNETES_SERVICE_HOST:12250/resourcePrincipalSessionTokens`` (TLS checked against
  ``OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH``, default the service account's ``ca.crt``; ``proxymux_endpoint``
  extra overrides the URL) for a resource principal session token bound to a fresh session key, refreshed
  at half its lifetime (the SDK's rule) and once after a 401. Region: ``region``, else
  ``OCI_RESOURCE_PRINCIPAL_REGION``.

One identity is kept per process and per endpoint set, so every hook and trigger of a triggerer shares
one session token instead of federating for each. Key generation, certificate parsing and the token calls
run where ``prepare()`` runs: a worker thread on the async path (see :class:`OCISigner`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_provider_modelreg.auth.oci_signing import (
    OCIAuthError,
    OCICredentials,
    OCISigner,
    SessionTokenFileIdentity,
    SigningIdentity,
    StaticIdentity,
    _checked_key_id,
    _clean,
    _tenancy_from_token,
    load_private_key,
)
from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceClient, ServiceError, ServicePolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

RP_VERSION = "OCI_RESOURCE_PRINCIPAL_VERSION"
RP_RPST = "OCI_RESOURCE_PRINCIPAL_RPST"
RP_PEM = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"
RP_PASSPHRASE = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE"
RP_REGION = "OCI_RESOURCE_PRINCIPAL_REGION"


def principal_credentials(auth_type: str, fields: Mapping[str, Any]) -> OCICredentials:
    if auth_type == "resource_principal":
        return resource_principal_credentials(fields)
    if auth_type == "instance_principal":
        return instance_principal_credentials(fields)
    if auth_type == "workload_identity":
        return workload_identity_credentials(fields)
    raise OCIAuthError(f"OCI auth_type {auth_type!r} is not a principal")


def _value_or_file(name: str) -> tuple[str | None, str | None]:
    """(value, path): a variable holding an absolute path names a file, anything else is the value."""
    raw = _clean(os.environ.get(name))
    if raw and os.path.isabs(raw):
        try:
            with open(raw, encoding="utf-8") as fh:
                return fh.read().strip(), raw
        except OSError as exc:
            raise OCIAuthError(f"could not read {name} file {raw!r}: {exc.strerror}") from None
    return raw, None


def resource_principal_credentials(fields: Mapping[str, Any]) -> OCICredentials:
    version = _clean(os.environ.get(RP_VERSION))
    if version != "2.2":
        raise OCIAuthError(
            f"OCI resource_principal needs {RP_VERSION}=2.2 (got {version or 'nothing'}); "
            "other versions are not supported"
        )
    missing = [name for name in (RP_RPST, RP_PEM) if not _clean(os.environ.get(name))]
    if missing:
        raise OCIAuthError(f"OCI resource_principal is incomplete: missing {', '.join(missing)}")
    token, token_path = _value_or_file(RP_RPST)
    pem, _pem_path = _value_or_file(RP_PEM)
    passphrase, _ = _value_or_file(RP_PASSPHRASE)
    private_key = load_private_key(pem=pem, passphrase=passphrase)
    if token_path:
        identity: Any = SessionTokenFileIdentity(token_path, private_key)
    else:
        identity = StaticIdentity(_checked_key_id(f"ST${token}"), private_key)
    region = _clean(fields.get("region")) or _clean(os.environ.get(RP_REGION))
    tenancy = _clean(fields.get("tenancy")) or _tenancy_from_token(token or "") or ""
    return OCICredentials(
        tenancy=tenancy,
        user=None,
        fingerprint=None,
        region=region,
        key_id=identity.key_id,
        private_key=private_key,
        auth_type="resource_principal",
        identity=identity,
    )


# -- session tokens from a token service --------------------------------------------------------------

METADATA_BASE_URL_ENV = "OCI_METADATA_BASE_URL"
#: The SDK's candidates when nothing overrides them: IPv4 first, then the IPv6 address.
DEFAULT_METADATA_BASE_URLS = ("http://169.254.169.254/opc/v2", "http://[fd00:c1::a9fe:a9fe]/opc/v2")
METADATA_AUTH_HEADERS = {"Authorization": "Bearer Oracle"}
#: The SDK's instance principal tokens are renewed this long before they expire (``valid_with_jitter``).
INSTANCE_TOKEN_JITTER_SECONDS = 60.0
#: After a 401, a token fetched less than this long ago is not fetched again (many waits failing at once
#: must not each federate): the request is resent with it.
UNAUTHORIZED_GRACE_SECONDS = 10.0
# The SDK retries the metadata service on 404, 429, 5xx and connection errors, 8 attempts within 180 s
# (INSTANCE_METADATA_URL_CERTIFICATE_RETRY_STRATEGY), and the federation endpoint on 429, 5xx and connection
# errors. The same bounds here; a connection's retry_max_attempts / retry_max_seconds lower them.
METADATA_RETRY = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=30.0, total_budget=180.0)
FEDERATION_RETRY = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=30.0, total_budget=180.0)

KUBERNETES_SERVICE_HOST = "KUBERNETES_SERVICE_HOST"
KUBERNETES_CERT_PATH_ENV = "OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH"
DEFAULT_KUBERNETES_CERT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
PROXYMUX_PORT = 12250


def _sanitised(pem: bytes) -> str:
    """PEM without its armour lines and newlines: how the SDK puts keys and certificates in a body."""
    return "".join(line for line in pem.decode("ascii").splitlines() if line and not line.startswith("-----"))


def _jwt_claims(token: str, source: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (as the SDK reads them: only to know when to renew it)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise OCIAuthError(f"the session token from {source} is not a JWT")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        raise OCIAuthError(f"the session token from {source} is not a JWT") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), (int, float)):
        raise OCIAuthError(f"the session token from {source} has no 'exp' claim")
    return claims


def _mask(secret: str) -> None:
    """Register a new session token with Airflow's secrets masker, when Airflow is there."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # used outside Airflow (the sandbox CLI, plain scripts)
        return
    mask_secret(secret)


def _new_session_key() -> rsa.RSAPrivateKey:
    # As the SDK's SessionKeySupplier: a fresh 2048-bit key for every token (~50 ms: never on the event loop).
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _describe(error: ServiceError) -> str:
    """A service error as a sentence free of tokens (ServiceError carries no headers or bodies)."""
    return str(error)


class TokenServiceIdentity(SigningIdentity):
    """keyId ``ST$<token>`` with a session key of its own, both renewed together from a token service.

    ``due()`` compares the clock with the renewal time (no I/O); ``prepare()`` renews when due;
    ``after_unauthorized()`` renews once (unless another caller just did). Subclasses give ``_exchange``
    (session key in, token out) and ``_renew_at`` (when a token's claims say to renew it).
    """

    name = "OCI principal"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._current: tuple[str, rsa.RSAPrivateKey] | None = None
        self._renew_at = 0.0
        self._renewed_at = float("-inf")
        self.claims: dict[str, Any] = {}
        self.renewals = 0

    # The signer reads both at once through pair(); key_id / private_key serve repr and the credentials.
    def pair(self) -> tuple[str, rsa.RSAPrivateKey]:
        current = self._current
        if current is None:
            self.prepare()
            current = self._current
        assert current is not None
        return current

    @property
    def key_id(self) -> str:  # type: ignore[override]
        return self.pair()[0]

    @property
    def private_key(self) -> rsa.RSAPrivateKey:  # type: ignore[override]
        return self.pair()[1]

    def due(self) -> bool:
        return self._current is None or self._clock() >= self._renew_at

    def prepare(self) -> None:
        if self.due():
            with self._lock:
                if self.due():
                    self._renew()

    def after_unauthorized(self) -> bool:
        with self._lock:
            if self._clock() - self._renewed_at < UNAUTHORIZED_GRACE_SECONDS:
                return True  # renewed meanwhile by another request: resend with that token
            log.info("%s: OCI answered 401; fetching a new session token", self.name)
            self._renew()
            return True

    def _renew(self) -> None:
        session_key = _new_session_key()
        token = self._exchange(session_key)
        claims = _jwt_claims(token, self.name)
        key_id = _checked_key_id(f"ST${token}")
        _mask(token)
        self._current = (key_id, session_key)
        self.claims = claims
        self._renewed_at = self._clock()
        self._renew_at = self._renew_time(claims)
        self.renewals += 1
        log.info(
            "%s: new session token, valid until %s", self.name, time.strftime("%H:%M:%S", time.gmtime(claims["exp"]))
        )

    def _exchange(self, session_key: rsa.RSAPrivateKey) -> str:
        raise NotImplementedError

    def _renew_time(self, claims: dict[str, Any]) -> float:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id='ST$<session token>')"


def _split(url: str) -> tuple[str, str]:
    """(scheme://host[:port], path): the client's base URL and the one path it posts to."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}", parsed.raw_path.decode("ascii") or "/"


def _client(
    service: str, base_url: str, retry: RetryPolicy, transport: Mapping[str, Any], **kwargs: Any
) -> ServiceClient:
    return ServiceClient(
        service=service,
        base_url=base_url,
        timeout=transport["timeout"],
        verify=kwargs.pop("verify", transport["verify"]),
        retry=retry,
        policy=ServicePolicy(request_id_header="opc-request-id", **kwargs),
    )


def _capped(policy: RetryPolicy, fields: Mapping[str, Any]) -> RetryPolicy:
    """The SDK's bounds, lowered by the connection's retry_max_attempts / retry_max_seconds when given."""
    from dataclasses import replace

    from airflow_provider_modelreg.transport import transport_options

    asked = transport_options(dict(fields), None, policy)["retry"]
    return replace(
        policy,
        max_attempts=min(policy.max_attempts, asked.max_attempts),
        total_budget=min(policy.total_budget, asked.total_budget),
    )


def _metadata_retryable(req: ApiRequest, error: ServiceError) -> bool | None:
    # The SDK's metadata strategy also retries 404 (a certificate not yet there on a booting instance).
    if error.status == 404:
        return True
    return None


class InstancePrincipalIdentity(TokenServiceIdentity):
    """The instance's identity: metadata-service certificates federated for a session token."""

    name = "OCI instance_principal"

    def __init__(
        self,
        *,
        metadata_base_urls: tuple[str, ...],
        federation_endpoint: str | None,
        transport: Mapping[str, Any],
        metadata_retry: RetryPolicy,
        federation_retry: RetryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self._transport = transport
        self._metadata_retry = metadata_retry
        self._federation_retry = federation_retry
        self.metadata_base_url, region = self._find_metadata_service(metadata_base_urls)
        self.region = region
        self.tenancy: str | None = None
        if federation_endpoint:
            self.federation_endpoint = federation_endpoint
        else:
            from airflow_provider_modelreg.auth.oci_regions import resolve_region

            resolved = resolve_region(region)
            self.federation_endpoint = f"https://auth.{resolved.identifier}.{resolved.domain}/v1/x509"
        self.prepare()

    def _metadata(self, base_url: str, retry: RetryPolicy | None = None) -> ServiceClient:
        client = _client(
            "OCI instance metadata",
            base_url,
            retry or self._metadata_retry,
            self._transport,
            retryable=_metadata_retryable,
            verify=True,
        )
        client.headers.update(METADATA_AUTH_HEADERS)
        return client

    def _find_metadata_service(self, candidates: tuple[str, ...]) -> tuple[str, str]:
        """(base URL, region) of the first candidate answering ``instance/region``."""
        failures: list[str] = []
        for base_url in candidates:
            client = self._metadata(base_url)
            try:
                answer = client.request(ApiRequest("GET", "instance/region", raw=True))
            except ServiceError as exc:
                failures.append(_describe(exc))
                if exc.status is not None:  # it answered, refusing: not a candidate to pass over
                    break
                continue
            finally:
                client.close()
            region = answer.data.decode("utf-8", "replace").strip().lower()
            if not region:
                raise OCIAuthError(
                    f"OCI instance_principal: the instance metadata service at {base_url} named no region"
                )
            from airflow_provider_modelreg.auth.oci_regions import resolve_region

            return base_url, resolve_region(region).identifier
        raise OCIAuthError(
            "OCI instance_principal: no instance metadata service reachable at "
            f"{', '.join(candidates)} ({'; '.join(failures)}). Instance principals work on OCI Compute only; "
            f"elsewhere set the connection's metadata_base_url or {METADATA_BASE_URL_ENV}"
        )

    def _fetch_identity(self) -> tuple[bytes, bytes, bytes]:
        client = self._metadata(self.metadata_base_url)
        try:
            # Fetched together (the SDK does too), so the key belongs to the certificate it comes with.
            leaf, key, intermediate = (
                client.request(ApiRequest("GET", f"identity/{name}", raw=True)).data
                for name in ("cert.pem", "key.pem", "intermediate.pem")
            )
        except ServiceError as exc:
            raise OCIAuthError(
                f"OCI instance_principal: could not read the instance's certificates from the instance "
                f"metadata service: {_describe(exc)}"
            ) from None
        finally:
            client.close()
        return leaf, key, intermediate

    def _exchange(self, session_key: rsa.RSAPrivateKey) -> str:
        leaf_pem, key_pem, intermediate_pem = self._fetch_identity()
        try:
            leaf = x509.load_pem_x509_certificate(leaf_pem)
        except ValueError:
            raise OCIAuthError(
                "OCI instance_principal: the metadata service's cert.pem is not a PEM certificate"
            ) from None
        tenancy = _tenancy_of_certificate(leaf)
        if self.tenancy is not None and tenancy != self.tenancy:
            # The SDK refuses this too: a leaf certificate never moves to another tenancy.
            raise OCIAuthError(
                f"OCI instance_principal: the instance certificate's tenancy changed from {self.tenancy} to {tenancy}"
            )
        self.tenancy = tenancy
        try:
            leaf_key = serialization.load_pem_private_key(key_pem, None)
        except (ValueError, TypeError):
            raise OCIAuthError(
                "OCI instance_principal: the metadata service's key.pem is not an unencrypted PEM key"
            ) from None
        if not isinstance(leaf_key, rsa.RSAPrivateKey):
            raise OCIAuthError("OCI instance_principal: the metadata service's key.pem is not an RSA key")
        fingerprint = ":".join(f"{b:02X}" for b in leaf.fingerprint(hashes.SHA1()))  # SHA-1: OCI's keyId form
        # The SDK's AuthTokenRequestSigner: keyId <tenancy>/fed-x509/<fingerprint>, no host header signed.
        signer = OCISigner(f"{tenancy}/fed-x509/{fingerprint}", leaf_key, sign_host=False)
        body = {
            "certificate": _sanitised(leaf_pem),
            "publicKey": _sanitised(_public_pem(session_key)),
            "intermediateCertificates": [_sanitised(intermediate_pem)],
        }
        base_url, path = _split(self.federation_endpoint)
        client = _client("OCI federation", base_url, self._federation_retry, self._transport)
        client.auth = signer
        try:
            answer = client.request(ApiRequest("POST", path, json=body, idempotent=True))
        except ServiceError as exc:
            raise OCIAuthError(
                f"OCI instance_principal: the federation endpoint {self.federation_endpoint} gave no session "
                f"token: {_describe(exc)}"
            ) from None
        finally:
            client.close()
        token = answer.data.get("token") if isinstance(answer.data, dict) else None
        if not isinstance(token, str) or not token:
            raise OCIAuthError(
                f"OCI instance_principal: the federation endpoint {self.federation_endpoint} answered without a token"
            )
        return token

    def _renew_time(self, claims: dict[str, Any]) -> float:
        return float(claims["exp"]) - INSTANCE_TOKEN_JITTER_SECONDS

    def share_key(self) -> str:
        return hashlib.sha256(f"instance\0{self.metadata_base_url}\0{self.federation_endpoint}".encode()).hexdigest()


def _tenancy_of_certificate(cert: x509.Certificate) -> str:
    # The SDK's auth_utils.get_tenancy_id_from_certificate: the subject's opc-tenant (or opc-identity) value.
    for attribute in cert.subject:
        value = str(attribute.value)
        for prefix in ("opc-tenant:", "opc-identity:"):
            if value.startswith(prefix):
                return value[len(prefix) :]
    raise OCIAuthError("OCI instance_principal: the instance certificate's subject names no tenancy (opc-tenant)")


class WorkloadIdentity(TokenServiceIdentity):
    """An OKE pod's identity: its service-account token exchanged at the cluster's proxymux."""

    name = "OCI workload_identity"

    def __init__(
        self,
        *,
        proxymux_endpoint: str,
        ca_path: str,
        token_file: str,
        transport: Mapping[str, Any],
        retry: RetryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.proxymux_endpoint = proxymux_endpoint
        self.ca_path = ca_path
        self.token_file = token_file
        self._transport = transport
        self._retry = retry
        self.prepare()

    def _service_account_token(self) -> str:
        try:
            with open(self.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise OCIAuthError(
                f"OCI workload_identity: could not read the service account token {self.token_file!r}: "
                f"{exc.strerror} (is this an OKE pod with a service account token mounted?)"
            ) from None
        claims = _jwt_claims(token, f"service account token {self.token_file!r}")
        if self._clock() >= claims["exp"]:  # the SDK's is_valid_sa_token
            raise OCIAuthError(f"OCI workload_identity: the service account token {self.token_file!r} has expired")
        return token

    def _exchange(self, session_key: rsa.RSAPrivateKey) -> str:
        service_account_token = self._service_account_token()
        base_url, path = _split(self.proxymux_endpoint)
        client = _client("OCI workload identity", base_url, self._retry, self._transport, verify=self.ca_path)
        client.headers["authorization"] = f"Bearer {service_account_token}"
        try:
            answer = client.request(
                ApiRequest(
                    "POST", path, json={"podKey": _sanitised(_public_pem(session_key))}, idempotent=True, raw=True
                )
            )
        except ServiceError as exc:
            hint = " (the SDK's advice: the cluster must be an enhanced cluster)" if exc.status == 403 else ""
            raise OCIAuthError(
                f"OCI workload_identity: the token exchange at {self.proxymux_endpoint} failed: {_describe(exc)}{hint}"
            ) from None
        finally:
            client.close()
        try:
            decoded = json.loads(base64.b64decode(answer.data))
        except (ValueError, binascii.Error):
            raise OCIAuthError(
                f"OCI workload_identity: the token exchange at {self.proxymux_endpoint} answered something other "
                "than base64 JSON"
            ) from None
        token = decoded.get("token") if isinstance(decoded, dict) else None
        if not isinstance(token, str) or not token.startswith("ST$") or len(token) <= 3:
            raise OCIAuthError(f"OCI workload_identity: the token exchange at {self.proxymux_endpoint} gave no token")
        return token[3:]  # answered as "ST$<token>"; the SDK strips the prefix too

    def _renew_time(self, claims: dict[str, Any]) -> float:
        # The SDK's valid_with_half_expiration_time: renewed at half the token's life.
        issued = float(claims.get("iat", claims["exp"]))
        return float(claims["exp"]) - (float(claims["exp"]) - issued) / 2

    def share_key(self) -> str:
        return hashlib.sha256(f"workload\0{self.proxymux_endpoint}\0{self.token_file}".encode()).hexdigest()


_IDENTITIES: dict[tuple[Any, ...], TokenServiceIdentity] = {}
_IDENTITIES_LOCK = threading.Lock()
_BUILDING: dict[tuple[Any, ...], threading.Lock] = {}


def _shared_identity(key: tuple[Any, ...], build: Callable[[], TokenServiceIdentity]) -> TokenServiceIdentity:
    """One identity per endpoint set and process: built once (one federation), even when asked concurrently."""
    with _IDENTITIES_LOCK:
        found = _IDENTITIES.get(key)
        if found is not None:
            return found
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        with _IDENTITIES_LOCK:
            found = _IDENTITIES.get(key)
        if found is not None:
            return found
        identity = build()
        with _IDENTITIES_LOCK:
            _IDENTITIES[key] = identity
            _BUILDING.pop(key, None)
        return identity


def forget_principals() -> None:
    """Drop the identities kept for this process (the next use federates anew)."""
    with _IDENTITIES_LOCK:
        _IDENTITIES.clear()


def _transport(fields: Mapping[str, Any]) -> dict[str, Any]:
    from airflow_provider_modelreg.transport import transport_options

    return transport_options(dict(fields))


def instance_principal_credentials(fields: Mapping[str, Any]) -> OCICredentials:
    override = _clean(fields.get("metadata_base_url")) or _clean(os.environ.get(METADATA_BASE_URL_ENV))
    candidates = (override.rstrip("/"),) if override else DEFAULT_METADATA_BASE_URLS
    federation = _clean(fields.get("federation_endpoint"))
    transport = _transport(fields)
    metadata_retry = _capped(METADATA_RETRY, fields)
    federation_retry = _capped(FEDERATION_RETRY, fields)
    key = ("instance_principal", candidates, federation, str(transport["verify"]), metadata_retry.max_attempts)
    identity = _shared_identity(
        key,
        lambda: InstancePrincipalIdentity(
            metadata_base_urls=candidates,
            federation_endpoint=federation,
            transport=transport,
            metadata_retry=metadata_retry,
            federation_retry=federation_retry,
        ),
    )
    assert isinstance(identity, InstancePrincipalIdentity)
    return OCICredentials(
        tenancy=identity.tenancy or "",
        user=None,
        fingerprint=None,
        region=_clean(fields.get("region")) or identity.region,
        key_id=identity.key_id,
        private_key=identity.private_key,
        auth_type="instance_principal",
        identity=identity,
    )


def workload_identity_credentials(fields: Mapping[str, Any]) -> OCICredentials:
    endpoint = _clean(fields.get("proxymux_endpoint"))
    if not endpoint:
        host = _clean(os.environ.get(KUBERNETES_SERVICE_HOST))
        if not host:
            raise OCIAuthError(
                f"OCI workload_identity needs {KUBERNETES_SERVICE_HOST} (set in every OKE pod) or the connection's "
                "proxymux_endpoint; is this running in an OKE pod?"
            )
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        endpoint = f"https://{host}:{PROXYMUX_PORT}/resourcePrincipalSessionTokens"
    ca_path = _clean(os.environ.get(KUBERNETES_CERT_PATH_ENV)) or DEFAULT_KUBERNETES_CERT_PATH
    if not os.path.isfile(ca_path):
        raise OCIAuthError(
            f"OCI workload_identity: the cluster CA certificate {ca_path!r} is missing (set {KUBERNETES_CERT_PATH_ENV})"
        )
    token_file = os.path.expanduser(
        _clean(fields.get("service_account_token_file")) or DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE
    )
    transport = _transport(fields)
    retry = _capped(FEDERATION_RETRY, fields)
    key = ("workload_identity", endpoint, ca_path, token_file, retry.max_attempts)
    identity = _shared_identity(
        key,
        lambda: WorkloadIdentity(
            proxymux_endpoint=endpoint, ca_path=ca_path, token_file=token_file, transport=transport, retry=retry
        ),
    )
    token = identity.key_id[3:]
    claims = identity.claims
    tenancy = _clean(fields.get("tenancy")) or _tenancy_from_token(token) or str(claims.get("res_tenant") or "")
    return OCICredentials(
        tenancy=tenancy,
        user=None,
        fingerprint=None,
        region=_clean(fields.get("region")) or _clean(os.environ.get(RP_REGION)),
        key_id=identity.key_id,
        private_key=identity.private_key,
        auth_type="workload_identity",
        identity=identity,
    )
