"""OCI principals: credentials that the platform Airflow runs on hands out (no user API key).

``resource_principal`` reads RPv2.2's variables as the ``oci`` SDK does: ``OCI_RESOURCE_PRINCIPAL_VERSION``
2.2, ``OCI_RESOURCE_PRINCIPAL_RPST`` and ``OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM`` (each an absolute path to a
file, or the value itself), ``OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE`` (optional, likewise) and
``OCI_RESOURCE_PRINCIPAL_REGION``. A token given as a file is re-read when it changes and after a 401.

Not implemented yet: ``instance_principal`` (instance metadata v2 certificates, then federation for a
session token) and ``workload_identity`` (the OKE token exchange) are refused with a clear error.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.auth.oci import (
    OCIAuthError,
    OCICredentials,
    SessionTokenFileIdentity,
    StaticIdentity,
    _checked_key_id,
    _clean,
    _tenancy_from_token,
    load_private_key,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

RP_VERSION = "OCI_RESOURCE_PRINCIPAL_VERSION"
RP_RPST = "OCI_RESOURCE_PRINCIPAL_RPST"
RP_PEM = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM"
RP_PASSPHRASE = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE"
RP_REGION = "OCI_RESOURCE_PRINCIPAL_REGION"


def principal_credentials(auth_type: str, fields: Mapping[str, Any]) -> OCICredentials:
    if auth_type == "resource_principal":
        return resource_principal_credentials(fields)
    raise OCIAuthError(
        f"OCI auth_type {auth_type!r} is not supported by airflow-provider-modelreg yet: use api_key, "
        "config_file, security_token or resource_principal"
    )


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
