"""The sandbox's open-source MLflow flavour behaves like a real ``mlflow server``: the same MlflowClient
session (MLflow's own client, run from the MLflow environment as a subprocess, since mlflow must never
enter the provider's environment) against both, answers equal call by call with ids and timestamps
normalised. The AI Data Platform flavour gets the same session through a signing shim."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.mlflow import NEWEST_MLFLOW, PLATFORM_ID, WORKSPACE_KEY, MlflowServer, MlflowServers, mlflow_binary

pytestmark = pytest.mark.integration

SESSION = Path(__file__).parent / "mlflow_session" / "session.py"
# Fields that differ between any two servers by nature: where artifacts live, who ran it, and fields the
# sandbox does not model (MLflow 3's workspaces, trace locations, deployment jobs).
SKIPPED = {
    "artifact_location",
    "artifact_uri",
    "user_id",
    "run_link",
    "workspace",
    "trace_location",
    "effective_trace_archival_retention",
    "deployment_job_id",
    "deployment_job_state",
}
# MLflow's error codes and the AI Data Platform's OCI-shaped ones, by kind.
ERROR_KINDS: dict[Any, str] = {
    "RESOURCE_ALREADY_EXISTS": "exists",
    "RESOURCE_DOES_NOT_EXIST": "missing",
    "INVALID_PARAMETER_VALUE": "invalid",
    "Conflict": "exists",
    "NotAuthorizedOrNotFound": "missing",
    "InvalidParameter": "invalid",
}
# Where the AI Data Platform flavour differs from open-source MLflow 3 on purpose: it keeps the seed's
# refusal of a param value over 6000 characters (MLflow 3's server cuts it), and its OCI-shaped 404 carries
# no RESOURCE_DOES_NOT_EXIST, so MlflowClient raises instead of answering None for a missing experiment.
AIDP_DIFFERENCES = {"log_param long value", "get_experiment_by_name missing"}
TIME_KEY = re.compile(r"(^|_)(time|timestamp)$")


def run_session(tracking: str, registry: str, prefix: str, out: Path, *sign: str) -> list[dict[str, Any]]:
    python = mlflow_binary().parent / "python"
    done = subprocess.run(
        [str(python), str(SESSION), tracking, registry, prefix, str(out), *sign],
        capture_output=True,
        text=True,
        timeout=240,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def normalise(log: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Ids become their order of first appearance, timestamps a placeholder, the name prefix a constant."""
    ids: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in sorted(value.items()) if k not in SKIPPED}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        is_id = key in ("run_id", "run_uuid", "experiment_id") or key == "answer"
        if is_id and isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}|\d+", value):
            return ids.setdefault(value, f"<id{len(ids)}>")
        if TIME_KEY.search(key) and isinstance(value, int) and value > 1_790_000_000_000:
            return "<now>"  # set by the server; the session's own times (2023) stay as sent
        if isinstance(value, str):
            return value.replace(prefix, "<prefix>")
        return value

    entries = [walk(entry) for entry in log]
    for entry in entries:  # the kind of error: its HTTP status and error code differ between flavours
        if "error" in entry:
            entry["error"] = ERROR_KINDS.get(entry["error"]["code"], entry["error"]["code"])
    return entries


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    assert [e["call"] for e in expected] == [a["call"] for a in actual]
    return [
        f"{e['call']}:\n  real:    {json.dumps(e, sort_keys=True)}\n  sandbox: {json.dumps(a, sort_keys=True)}"
        for e, a in zip(expected, actual, strict=True)
        if e != a
    ]


@pytest.fixture(scope="module")
def real_session(mlflow_servers: MlflowServers, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The session against the newest real server, which the open-source flavour imitates (a 2.x server
    differs: it refuses a param value over 6000 characters, its client sends no prompt filter)."""
    server = mlflow_servers.get(NEWEST_MLFLOW)
    prefix = f"diff-{uuid.uuid4().hex[:8]}"
    out = tmp_path_factory.mktemp("real") / "session.json"
    return normalise(run_session(server.url, server.url, prefix, out), prefix)


@pytest.mark.mlflow_server
def test_the_open_source_flavour_answers_like_a_real_server(real_session, sandbox, tmp_path):
    prefix = f"diff-{uuid.uuid4().hex[:8]}"
    log = normalise(run_session(sandbox.url, sandbox.url, prefix, tmp_path / "session.json"), prefix)
    differences = compare(real_session, log)
    assert not differences, "\n".join(differences)
    assert len(log) > 90 and any("error" in e for e in log) and any("answer" in e for e in log)


@pytest.mark.mlflow_server
def test_the_ai_data_platform_flavour_answers_the_same_session_when_signed(
    real_session, sandbox, oci_key_registered, oci_private_pem, tmp_path
):
    sandbox.sandbox.state.lifecycle_seconds["mlflow"] = 0  # MlflowClient polls a pending version every 3 s
    pem = tmp_path / "key.pem"
    pem.write_text(oci_private_pem)
    tracking = f"{sandbox.url}/20260430/aiDataPlatforms/{PLATFORM_ID}/workspaces/{WORKSPACE_KEY}/mlops"
    registry = f"{sandbox.url}/20260430/aiDataPlatforms/{PLATFORM_ID}/mlops"
    prefix = f"diff-{uuid.uuid4().hex[:8]}"
    log = run_session(tracking, registry, prefix, tmp_path / "session.json", "--sign", oci_key_registered, str(pem))
    differences = compare(
        [e for e in real_session if e["call"] not in AIDP_DIFFERENCES],
        [e for e in normalise(log, prefix) if e["call"] not in AIDP_DIFFERENCES],
    )
    assert not differences, "\n".join(differences)
    assert sandbox.sandbox.state.counters.get("oci.rejected_signatures", 0) == 0
    assert len(sandbox.sandbox.state.all("mlflow.runs")) == 4  # the signed session reached the AIDP prefixes


RUN_NAME_FORM = re.compile(r"[a-z]+-[a-z]+-\d{1,4}")


def unnamed_run_name(base_url: str) -> str:
    api = f"{base_url}/api/2.0/mlflow"
    experiment = httpx.post(f"{api}/experiments/create", json={"name": f"unnamed-{uuid.uuid4().hex[:8]}"}).json()
    run = httpx.post(f"{api}/runs/create", json={"experiment_id": experiment["experiment_id"], "start_time": 1})
    return run.json()["run"]["info"]["run_name"]


@pytest.mark.mlflow_server
def test_an_unnamed_run_is_named_in_mlflows_form_on_every_server_and_the_sandbox(mlflow_server: MlflowServer, sandbox):
    """MLflow 2.x and 3.x name a run made without a name "<adjective>-<noun>-<0..1000>" (at most 20
    characters); so does the sandbox, from its own word lists."""
    for name in (unnamed_run_name(mlflow_server.url), unnamed_run_name(sandbox.url)):
        assert RUN_NAME_FORM.fullmatch(name) and len(name) <= 20, name
        assert 0 <= int(name.rsplit("-", 1)[1]) <= 1000
