"""OCI credentials from a connection's fields or ``~/.oci/config``, and the names every OCI caller uses.

Signing itself lives in :mod:`airflow_provider_modelreg.auth.oci_signing` and the principals' token
exchanges in :mod:`airflow_provider_modelreg.auth.oci_principals`; this module picks between them by
``auth_type`` and re-exports the signer's names, so ``from airflow_provider_modelreg.auth.oci import
OCISigner`` keeps working.
"""

from __future__ import annotations

import configparser
import os
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.auth.oci_signing import (
    EMPTY_BODY_SHA256,
    OCIAuthError,
    OCICredentials,
    OCISigner,
    SessionTokenFileIdentity,
    SigningIdentity,
    StaticIdentity,
    _clean,
    _read_session_token,
    _tenancy_from_token,
    load_private_key,
)
from airflow_provider_modelreg.get_provider_info import OCI_AUTH_TYPES

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AUTH_TYPES",
    "EMPTY_BODY_SHA256",
    "OCIAuthError",
    "OCICredentials",
    "OCISigner",
    "SigningIdentity",
    "StaticIdentity",
    "credentials_from_fields",
    "load_private_key",
    "read_oci_config",
    "resolve_auth_type",
]

DEFAULT_CONFIG_FILE = "~/.oci/config"
DEFAULT_PROFILE = "DEFAULT"


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

#: The ways of authenticating, as a connection's ``auth_type`` names them (declared once, with the form's
#: fields: the first four are apache-airflow-providers-oci's names, the others the SDK's remaining modes).
AUTH_TYPES = OCI_AUTH_TYPES
# Fields that only an API-key (or session-token) connection fills.
_KEY_FIELDS = ("tenancy", "user", "fingerprint", "private_key", "key_file")


def resolve_auth_type(fields: Mapping[str, Any]) -> str:
    """The connection's ``auth_type``, or the one its filled fields imply.

    Without ``auth_type``: a config file, or a profile other than DEFAULT, means ``config_file`` (filled
    fields override the profile's); else a session token file means ``security_token``; else filled API-key
    fields mean ``api_key`` (the form pre-fills ``profile: DEFAULT``, which must not send the hook to
    ``~/.oci/config``); with nothing filled, ``config_file`` (``~/.oci/config``, profile DEFAULT).
    """
    explicit = _clean(fields.get("auth_type"))
    if explicit:
        kind = explicit.lower()
        if kind not in AUTH_TYPES:
            raise OCIAuthError(f"OCI auth_type {explicit!r} is not one of {', '.join(AUTH_TYPES)}")
        return kind
    profile = _clean(fields.get("profile"))
    if _clean(fields.get("config_file")) or (profile and profile != DEFAULT_PROFILE):
        return "config_file"
    if _clean(fields.get("security_token_file")):
        return "security_token"
    if any(_clean(fields.get(name)) for name in _KEY_FIELDS):
        return "api_key"
    return "config_file"


def credentials_from_fields(fields: Mapping[str, Any]) -> OCICredentials:
    """Build credentials from flat connection fields, in the way ``auth_type`` (or :func:`resolve_auth_type`)
    names.

    Keys: auth_type, tenancy, user, fingerprint, private_key (inline PEM), key_file, pass_phrase, region,
    config_file, profile, security_token_file. ``api_key`` and ``security_token`` read only the fields;
    ``config_file`` reads the profile and lets filled fields override it; the principals read their
    platform (see :mod:`airflow_provider_modelreg.auth.oci_principals`).
    """
    auth_type = resolve_auth_type(fields)
    if auth_type in ("instance_principal", "resource_principal", "workload_identity"):
        from airflow_provider_modelreg.auth.oci_principals import principal_credentials

        return principal_credentials(auth_type, fields)

    merged: dict[str, str] = {}
    if auth_type == "config_file" or (auth_type == "security_token" and _clean(fields.get("config_file"))):
        config_file = _clean(fields.get("config_file")) or DEFAULT_CONFIG_FILE
        profile = _clean(fields.get("profile")) or DEFAULT_PROFILE
        merged.update(read_oci_config(config_file, profile))
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
    token_file = _clean(merged.get("security_token_file")) if auth_type != "api_key" else None

    missing: list[str] = []
    if auth_type == "security_token" and not token_file:
        missing.append("security_token_file")
    token: str | None = None
    if token_file:
        token = _read_session_token(token_file)
        # A session profile normally names its tenancy; if not, the token's own claim says it.
        tenancy = tenancy or _tenancy_from_token(token)
        if not tenancy:
            missing.append("tenancy")
    elif auth_type != "security_token":
        missing.extend(name for name, value in (("tenancy", tenancy), ("user", user)) if not value)
        if not fingerprint:
            missing.append("fingerprint")
    if not inline_key and not key_file:
        missing.append("one of private_key/key_file")
    if missing:
        mode = "session-token" if token_file or auth_type == "security_token" else "API-key"
        raise OCIAuthError(f"OCI {mode} credentials ({auth_type}) are incomplete: missing {', '.join(missing)}")

    # An inline key wins over a key file (as key_content does in the SDK), e.g. a key pasted into the
    # connection on top of a profile that names a file.
    private_key = load_private_key(
        pem=inline_key or None,
        path=None if inline_key else key_file,
        passphrase=_clean(merged.get("pass_phrase")),
    )
    identity: SigningIdentity | None = None
    if token_file:
        identity = SessionTokenFileIdentity(token_file, private_key)
        key_id = identity.key_id
    else:
        key_id = f"{tenancy}/{user}/{fingerprint}"
    return OCICredentials(
        tenancy=tenancy or "",
        user=user,
        fingerprint=fingerprint,
        region=region,
        key_id=key_id,
        private_key=private_key,
        auth_type="security_token" if token_file else auth_type,
        identity=identity,
    )
