"""The sandbox can be restarted under a running deployment: a state file, a fixed OCI key, auth switched off."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.sandbox.persistence import dump_state, load_state, save_state
from airflow_provider_modelreg.sandbox.state import OutcomeRule, SandboxState

pytestmark = pytest.mark.integration

COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaasandboxcompartment"
HR_MODEL = {
    "use_case_id": "uc-1",
    "name": "kept-across-restarts",
    "from_model_id": "a" * 24,
    "train_sample_ids": ["s1"],
    "test_sample_ids": ["t1"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox_cli(*args: str, port: int | None = None) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """``python -m airflow_provider_modelreg.sandbox`` as a user starts it; yields its URL and printed connections."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_modelreg.sandbox", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        connections: dict[str, dict[str, Any]] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if m := re.match(r"\s+export AIRFLOW_CONN_(\w+)='(.*)'$", line):
                connections[m[1].lower()] = json.loads(m[2])
            if len(connections) >= 5 or "nemo_default" in connections:
                break
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/_sandbox/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the sandbox CLI did not start") from None
                time.sleep(0.1)
        yield url, connections
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def oci_models(conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """List models the way a DAG task does: the OCI hook, signing with the connection the sandbox printed."""
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook

    monkeypatch.setenv("AIRFLOW_CONN_SANDBOX_OCI", json.dumps(conn))
    return list(OCIVisionHook(conn_id="sandbox_oci").list_models(compartment_id=COMPARTMENT))


def test_a_restarted_sandbox_keeps_resources_key_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state_file, key_file = tmp_path / "sandbox.state", tmp_path / "keys" / "oci.pem"
    args = ("--state-file", str(state_file), "--oci-key-file", str(key_file))
    port = free_port()  # a deployment's connections name one port: the restarts keep it
    hr = {"authorization": "Bearer sandbox-happyrobot-key"}
    with sandbox_cli(*args, "--nemo-token", "nemo-secret", port=port) as (url, first_connections):
        created = httpx.post(f"{url}/api/v1/models", json=HR_MODEL, headers=hr).raise_for_status().json()
        assert oci_models(first_connections["oci_default"], monkeypatch) == []
        assert httpx.get(f"{url}/apis/models/v2/workspaces/default/models").status_code == 401
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600

    with sandbox_cli(*args, port=port) as (url, connections):
        # The model is still there, with its id; the connections printed before still sign valid requests.
        kept = httpx.get(f"{url}/api/v1/models/{created['id']}", headers=hr).raise_for_status().json()
        assert kept["name"] == HR_MODEL["name"]
        assert connections["oci_default"]["extra"]["key_file"] == str(key_file)
        assert oci_models(first_connections["oci_default"], monkeypatch) == []
        # NeMo auth stays on across the restart, until switched off.
        assert httpx.get(f"{url}/apis/models/v2/workspaces/default/models").status_code == 401
        assert httpx.delete(f"{url}/_sandbox/nemo-tokens").json() == {"nemo_auth": "off"}
        assert httpx.get(f"{url}/apis/models/v2/workspaces/default/models").status_code == 200

    with sandbox_cli(*args, port=port) as (url, _):
        assert httpx.get(f"{url}/apis/models/v2/workspaces/default/models").status_code == 200
        models = httpx.get(f"{url}/api/v1/models", headers=hr).json()
        assert [m["id"] for m in models] == [created["id"]]


def test_without_a_state_file_a_restart_starts_empty(tmp_path: Path):
    hr = {"authorization": "Bearer sandbox-happyrobot-key"}
    with sandbox_cli() as (url, _):
        httpx.post(f"{url}/api/v1/models", json=HR_MODEL, headers=hr).raise_for_status()
    with sandbox_cli() as (url, _):
        assert httpx.get(f"{url}/api/v1/models", headers=hr).json() == []


def test_the_state_file_round_trips_counters_bytes_and_tuple_keys(tmp_path: Path):
    state = SandboxState()
    state.extra["mlflow_ids"] = itertools.count(7)
    state.extra["retry_tokens"] = {("POST", "/models"): ("token", 200, b"{}", {"etag": "1"})}
    state.outcome_rules.append(OutcomeRule(service="oci_vision", match="doomed"))
    state.store("happyrobot", "m1", {"id": "m1"})
    save_state(state, tmp_path / "s.state")

    restored = SandboxState()
    assert load_state(tmp_path / "s.state", restored)
    assert next(restored.extra["mlflow_ids"]) == 7  # ids go on where they stopped, never repeat
    assert restored.extra["retry_tokens"] == state.extra["retry_tokens"]
    assert restored.outcome_rules == state.outcome_rules
    assert restored.get("happyrobot", "m1") == state.get("happyrobot", "m1")
    assert restored.lock is not state.lock
    assert not load_state(tmp_path / "missing.state", SandboxState())  # a first start
    assert [p.name for p in tmp_path.iterdir()] == ["s.state"]  # no temporary file left beside it
    assert dump_state(restored)  # the restored state can be saved again
