"""What the OCI-signed services share: credentials from an Airflow connection, region endpoints, signing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_modelreg.hooks.base import ModelRegHook, base_url_of, connection_extras, transport_options
from airflow_provider_modelreg.http import RetryPolicy, ServiceClient

if TYPE_CHECKING:
    from airflow.sdk import Connection

# The OCI SDK's default strategy: 8 attempts, at most 30 s a wait (API-NOTES section 7).
OCI_RETRY = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=30.0, total_budget=600.0)

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
            **transport_options(fields, retry, OCI_RETRY),
        )
