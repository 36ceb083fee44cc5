"""How an OCI connection authenticates: auth_type (explicit or derived), the form's defaults, apache's
``oci`` connections, session tokens re-read in place, and keys loaded off the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fixtures.oci import FINGERPRINT, KEY_ID, TENANCY, USER

from airflow_provider_modelreg.auth import oci as oci_auth
from airflow_provider_modelreg.auth import oci_signing
from airflow_provider_modelreg.auth.oci import OCIAuthError, credentials_from_fields, resolve_auth_type
from airflow_provider_modelreg.get_provider_info import OCI_AUTH_TYPES, connection_type
from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook


def form_defaults(conn_type: str) -> dict[str, Any]:
    """What the connection form pre-fills: every conn-field's schema default."""
    fields = connection_type(conn_type)["conn-fields"]
    return {name: field["schema"]["default"] for name, field in fields.items() if "default" in field["schema"]}


def test_the_form_offers_every_auth_type_and_prefills_profile_default():
    field = connection_type("oci_vision")["conn-fields"]["auth_type"]
    assert [v for v in field["schema"]["enum"] if v] == list(OCI_AUTH_TYPES) == list(oci_auth.AUTH_TYPES)
    assert form_defaults("oci_vision")["profile"] == "DEFAULT"


def test_filled_api_key_fields_win_over_the_prefilled_profile(oci_private_pem):
    fields = form_defaults("oci_vision") | {
        "tenancy": TENANCY,
        "user": USER,
        "fingerprint": FINGERPRINT,
        "private_key": oci_private_pem,
    }
    assert resolve_auth_type(fields) == "api_key"
    assert credentials_from_fields(fields).key_id == KEY_ID  # no ~/.oci/config read (HOME has none)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, "config_file"),
        ({"profile": "DEFAULT"}, "config_file"),
        ({"profile": "OTHER", "user": "u"}, "config_file"),
        ({"config_file": "/x", "private_key": "k"}, "config_file"),
        ({"security_token_file": "/t", "key_file": "/k"}, "security_token"),
        ({"auth_type": "Instance_Principal", "user": "u"}, "instance_principal"),
    ],
)
def test_auth_type_is_derived_from_what_is_filled(fields, expected):
    assert resolve_auth_type(fields) == expected


def test_an_unknown_auth_type_is_refused_by_name():
    with pytest.raises(OCIAuthError, match="auth_type 'oauth' is not one of api_key, config_file"):
        resolve_auth_type({"auth_type": "oauth"})


def test_explicit_api_key_ignores_a_profile(tmp_path, oci_private_pem):
    with pytest.raises(OCIAuthError, match=r"\(api_key\) are incomplete: missing user, fingerprint"):
        credentials_from_fields(
            {
                "auth_type": "api_key",
                "config_file": str(tmp_path / "none"),
                "tenancy": "t",
                "private_key": oci_private_pem,
            }
        )


@pytest.mark.integration
def test_a_connection_saved_from_the_form_signs_with_its_fields(
    monkeypatch, sandbox, oci_key_registered, oci_private_pem
):
    extra = form_defaults("oci_vision") | {
        "tenancy": TENANCY,
        "user": USER,
        "fingerprint": FINGERPRINT,
        "private_key": oci_private_pem,
        "region": "us-ashburn-1",
    }
    # The form stores its fields under extra__<type>__ names, as the UI saves them.
    conn = {
        "conn_type": "oci_vision",
        "host": sandbox.url,
        "extra": {f"extra__oci_vision__{k}": v for k, v in extra.items()},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OCI_FORM", json.dumps(conn))
    assert OCIVisionHook(conn_id="oci_form").test_connection()[0]


@pytest.mark.integration
def test_an_apache_providers_oci_connection_works(monkeypatch, sandbox, oci_key_registered, oci_private_key):
    """apache-airflow-providers-oci's fields: user in login, passphrase in password, private_key_content."""
    pem = oci_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"apache-pass"),
    ).decode()
    conn = {
        "conn_type": "oci",
        "host": sandbox.url,
        "login": USER,
        "password": "apache-pass",
        "extra": {
            "tenancy": TENANCY,
            "fingerprint": FINGERPRINT,
            "private_key_content": pem,
            "region": "us-ashburn-1",
            "compartment_id": "ocid1.compartment.oc1..x",
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_APACHE_OCI", json.dumps(conn))
    hook = OCIVisionHook(conn_id="apache_oci")
    assert hook.credentials.key_id == KEY_ID
    ok, message = hook.test_connection()
    assert ok, message


# -- session tokens re-read ------------------------------------------------------------------------------
def _token_server(seen: list[str], accepted: set[str]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        key_id = request.headers["authorization"].split('keyId="')[1].split('"')[0]
        seen.append(key_id)
        return httpx.Response(200 if key_id in accepted else 401, json={"code": "NotAuthenticated", "message": "x"})

    return httpx.MockTransport(handler)


@pytest.fixture
def token_setup(tmp_path, oci_private_pem):
    token, key = tmp_path / "token", tmp_path / "key.pem"
    token.write_text("old-token")
    key.write_text(oci_private_pem)
    return token, key


def test_a_token_refreshed_in_its_file_is_used_after_a_401(token_setup):
    token, key = token_setup
    creds = credentials_from_fields({"security_token_file": str(token), "key_file": str(key), "tenancy": "t"})
    seen: list[str] = []
    with httpx.Client(transport=_token_server(seen, {"ST$new-token"}), auth=creds.signer()) as client:
        token.write_text("new-token")  # `oci session refresh` rewrote the file
        assert client.get("https://h/x").status_code == 200
    assert seen == ["ST$old-token", "ST$new-token"]  # one 401, then the re-read token


def test_a_changed_token_file_is_read_before_sending(token_setup, monkeypatch):
    token, key = token_setup
    clock = [0.0]
    identity = oci_signing.SessionTokenFileIdentity(
        str(token), oci_signing.load_private_key(path=str(key)), clock=lambda: clock[0]
    )
    signer = oci_signing.OCISigner(identity=identity)
    seen: list[str] = []
    with httpx.Client(transport=_token_server(seen, {"ST$old-token", "ST$new-token"}), auth=signer) as client:
        client.get("https://h/x")
        token.write_text("new-token")
        os.utime(token, ns=(1, 1))
        clock[0] = oci_signing.TOKEN_FILE_CHECK_SECONDS
        client.get("https://h/x")
    assert seen == ["ST$old-token", "ST$new-token"]


def test_a_401_with_an_unchanged_token_is_not_resent(token_setup):
    token, key = token_setup
    creds = credentials_from_fields({"security_token_file": str(token), "key_file": str(key), "tenancy": "t"})
    seen: list[str] = []
    with httpx.Client(transport=_token_server(seen, set()), auth=creds.signer()) as client:
        assert client.get("https://h/x").status_code == 401
    assert seen == ["ST$old-token"]


def test_the_async_signer_rereads_the_token_in_a_worker_thread(token_setup, monkeypatch):
    token, key = token_setup
    creds = credentials_from_fields({"security_token_file": str(token), "key_file": str(key), "tenancy": "t"})
    threads: list[threading.Thread] = []
    reload = oci_signing.SessionTokenFileIdentity._reload

    def recording(self, *, force):
        threads.append(threading.current_thread())
        return reload(self, force=force)

    monkeypatch.setattr(oci_signing.SessionTokenFileIdentity, "_reload", recording)
    seen: list[str] = []

    async def main() -> int:
        async with httpx.AsyncClient(transport=_token_server(seen, {"ST$new-token"}), auth=creds.signer()) as client:
            token.write_text("new-token")
            return (await client.get("https://h/x")).status_code

    assert asyncio.run(main()) == 200
    assert seen == ["ST$old-token", "ST$new-token"]
    assert threads and threading.main_thread() not in threads


# -- keys: loaded once per credential, never in the event loop ----------------------------------------
def test_triggers_build_their_client_off_the_event_loop_and_load_each_key_once(monkeypatch, oci_private_key):
    pem = (
        oci_private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        + "\n"
    )  # a key no other test loaded, so the cache starts cold for it
    conn = {
        "conn_type": "oci_vision",
        "host": "https://h.invalid",
        "extra": {"tenancy": TENANCY, "user": USER, "fingerprint": FINGERPRINT, "private_key": pem},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OCI_LOOP", json.dumps(conn))
    parsed: list[threading.Thread] = []
    parse = oci_signing._parse_private_key

    def recording(*args):
        parsed.append(threading.current_thread())
        return parse(*args)

    monkeypatch.setattr(oci_signing, "_parse_private_key", recording)
    oci_signing._KEY_CACHE.clear()

    async def main() -> tuple[threading.Thread, list[Any]]:
        clients = [await OCIVisionHook.aclient_for("oci_loop") for _ in range(3)]
        return threading.current_thread(), clients

    loop_thread, clients = asyncio.run(main())
    assert len(parsed) == 1, "the key is parsed once for the three clients"
    assert parsed[0] is not loop_thread
    assert len({c.auth.share_key() for c in clients}) == 1
