"""OCI principals: credentials that the platform Airflow runs on hands out (no user API key).

Not implemented yet: ``instance_principal`` (instance metadata v2 certificates, then federation for a
session token), ``resource_principal`` (RPv2.2 variables) and ``workload_identity`` (the OKE token
exchange) are accepted as ``auth_type`` names so a connection can say what it wants, and refused with a
clear error until they are (issue 15, item 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.auth.oci import OCIAuthError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_modelreg.auth.oci import OCICredentials


def principal_credentials(auth_type: str, fields: Mapping[str, Any]) -> OCICredentials:
    raise OCIAuthError(
        f"OCI auth_type {auth_type!r} is not supported by airflow-provider-modelreg yet: use api_key, "
        "config_file or security_token"
    )
