"""What the OCI-signed services share: credentials from an Airflow connection, region endpoints, signing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_modelreg.hooks.base import ModelRegHook, base_url_of, connection_extras
from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceClient, ServiceError, ServicePolicy
from airflow_provider_modelreg.transport import transport_options

if TYPE_CHECKING:
    from airflow.sdk import Connection

# The OCI SDK's default strategy: 8 attempts, at most 30 s a wait (API-NOTES section 7).
OCI_RETRY = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=30.0, total_budget=600.0)

# 409 codes the oci SDK's default strategy resends (oci.retry, API-NOTES section 9).
RETRYABLE_CONFLICTS = frozenset({"IncorrectState", "LockConflict"})


def oci_retryable(req: ApiRequest, error: ServiceError) -> bool | None:
    """The SDK's default: 429, 409 IncorrectState/LockConflict and every 5xx but 501 (Not Implemented).
    Only for calls safe to resend (GETs, creates with an opc-retry-token): the caller checks that."""
    if error.status == 409:
        return error.code in RETRYABLE_CONFLICTS
    if error.status is not None and error.status >= 500:
        return error.status != 501
    return None


def oci_explain(error: ServiceError) -> str | None:
    if error.code == "InvalidatedRetryToken":
        # Oracle's meaning: the token was invalidated, e.g. by a later operation on the resource, or it was
        # reused with a different request body.
        return (
            "the opc-retry-token was invalidated: a later operation changed the resource it created, or the "
            "token was sent again with a different request"
        )
    return None


#: Oracle's clients send their own opc-request-id on every call; so do these hooks (logged beside the
#: answer's and shown in errors, even when no answer came).
OCI_POLICY = ServicePolicy(retryable=oci_retryable, explain=oci_explain, request_id_header="opc-request-id")

# apache-airflow-providers-oci's ``oci`` connection keeps the user OCID in login, the key passphrase in
# password and the inline key in the ``private_key_content`` extra; these hooks read those too.
_APACHE_OCI_ALIASES = {"private_key_content": "private_key", "passphrase": "pass_phrase"}


class OCIBaseHook(ModelRegHook):
    """Base of the OCI hooks. ``endpoint_template`` gives the base URL from ``{oci_domain}``
    (``<region>.oci.<realm's second-level domain>``); the connection's host, when set, overrides it
    (private endpoints, the sandbox)."""

    endpoint_template: ClassVar[str]
    service_name: ClassVar[str] = "OCI"

    @classmethod
    def oci_fields(cls, conn: Connection) -> dict[str, Any]:
        fields = dict(connection_extras(conn))
        # The connection form says "passphrase" (so Airflow masks it); OCI config files say "pass_phrase".
        for alias, name in _APACHE_OCI_ALIASES.items():
            if alias in fields:
                fields.setdefault(name, fields.pop(alias))
        if conn.login and not fields.get("user"):
            fields["user"] = conn.login
        if conn.password and not fields.get("pass_phrase"):
            fields["pass_phrase"] = conn.password
        return fields

    @classmethod
    def default_endpoint(cls, region: str) -> str:
        from airflow_provider_modelreg.auth.oci_regions import resolve_region

        resolved = resolve_region(region)
        return cls.endpoint_template.format(region=resolved.identifier, oci_domain=resolved.oci_domain)

    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        from airflow_provider_modelreg.auth.oci import credentials_from_fields

        fields = cls.oci_fields(conn)
        cls.mask(fields.get("private_key"), fields.get("pass_phrase"))
        credentials = credentials_from_fields(fields)
        if credentials.key_id.startswith("ST$"):
            cls.mask(credentials.key_id[3:])
        region = credentials.region or fields.get("region")
        if not conn.host and not region:
            raise ValueError(f"connection {conn.conn_id!r}: set a region or a host (endpoint)")
        default = cls.default_endpoint(region) if region else ""
        return ServiceClient(
            service=cls.service,
            base_url=base_url_of(conn.host, default, port=conn.port),
            auth=credentials.signer(),
            policy=OCI_POLICY,
            **transport_options(fields, retry, OCI_RETRY),
        )
