"""What the OCI-signed services share: credentials from an Airflow connection, region endpoints, signing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_modelreg.hooks.base import ModelRegHook, base_url_of, connection_extras, transport_options
from airflow_provider_modelreg.http import RetryPolicy, ServiceClient

if TYPE_CHECKING:
    from airflow.sdk import Connection

# The OCI SDK's default strategy: 8 attempts, at most 30 s a wait (API-NOTES section 7).
OCI_RETRY = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=30.0, total_budget=600.0)


class OCIBaseHook(ModelRegHook):
    """Base of the OCI hooks. ``endpoint_template`` gives the base URL from the region; the connection's
    host, when set, overrides it (government realms, private endpoints, the sandbox)."""

    endpoint_template: ClassVar[str]

    @classmethod
    def oci_fields(cls, conn: Connection) -> dict[str, Any]:
        extras = connection_extras(conn)
        fields = dict(extras)
        # The connection form says "passphrase" (so Airflow masks it); OCI config files say "pass_phrase".
        if "passphrase" in fields:
            fields["pass_phrase"] = fields.pop("passphrase")
        return fields

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
        default = cls.endpoint_template.format(region=region) if region else ""
        return ServiceClient(
            service=cls.service,
            base_url=base_url_of(conn.host, default, port=conn.port),
            auth=credentials.signer(),
            **transport_options(fields, retry, OCI_RETRY),
        )
