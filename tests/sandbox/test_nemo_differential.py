"""The sandbox's NeMo Platform behaves like NVIDIA's real server: one NVIDIA-SDK session
(tests/sandbox/nemo_sdk_session/differential.py, run from ``.venv-nemo``) against the real server (nemo-platform
0.6.0, with NVIDIA's own model-spec task analysing a tiny checkpoint; tests/fixtures/nemo_server.py) and against
the sandbox, every answer compared call by call with ids, job names and timestamps normalised (a timestamp
becomes whether it is naive or carries a zone, which the real server's answers do not)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures.nemo_server import NemoServer

pytestmark = [pytest.mark.integration, pytest.mark.nemo_server]

REPO = Path(__file__).parents[2]
SESSION = Path(__file__).parent / "nemo_sdk_session" / "differential.py"
SDK_PYTHON = Path(os.environ.get("MODELREG_NEMO_SDK_PYTHON", REPO / ".venv-nemo" / "bin" / "python"))
ID_KEYS = {"id", "attempt_id"}
TIME_KEYS = {"created_at", "updated_at"}
JOB_NAME = re.compile(r"models-system-[a-z0-9]{8}")


def run_session(url: str, workspace: str, checkpoint: Path, out: Path) -> list[dict[str, Any]]:
    if not SDK_PYTHON.exists():
        pytest.skip(f"NVIDIA's nemo_platform SDK is not installed at {SDK_PYTHON}: run `./dev setup`")
    done = subprocess.run(
        [str(SDK_PYTHON), str(SESSION), url, workspace, str(checkpoint), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1,localhost"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())["entries"]


def normalise(entries: list[dict[str, Any]], workspace: str) -> list[dict[str, Any]]:
    """Ids and job names become their order of first appearance, timestamps whether they are naive, the
    workspace a constant, a fileset's storage path its part under the storage root."""
    ids: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in sorted(value.items())}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if key in ID_KEYS and isinstance(value, str):
            return ids.setdefault(value, f"<id{len(ids)}>")
        if key in TIME_KEYS and isinstance(value, str):
            return "<aware>" if re.search(r"(Z|[+-]\d\d:?\d\d)$", value) else "<naive>"
        if isinstance(value, str):
            if key == "path" and "/filesets/" in value and not value.startswith("/apis/"):
                value = "<storage>/filesets/" + value.split("/filesets/", 1)[1]
            value = JOB_NAME.sub(lambda m: ids.setdefault(m.group(0), f"<job{len(ids)}>"), value)
            return value.replace(workspace, "<ws>")
        return value

    return [walk(entry) for entry in entries]


def compare(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    assert [e["call"] for e in expected] == [a["call"] for a in actual]
    return [
        f"{e['call']}:\n  real:    {json.dumps(e, sort_keys=True)}\n  sandbox: {json.dumps(a, sort_keys=True)}"
        for e, a in zip(expected, actual, strict=True)
        if e != a
    ]


@pytest.fixture(scope="module")
def real_session(nemo_server: NemoServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workspace = nemo_server.unique("diff")
    out = tmp_path_factory.mktemp("nemo-real") / "session.json"
    return normalise(run_session(nemo_server.url, workspace, nemo_server.tiny_checkpoint(), out), workspace)


def test_the_sandbox_answers_the_sdk_session_like_nvidias_server(real_session, nemo_server, sandbox, tmp_path):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 1.0
    workspace = f"diff-{uuid.uuid4().hex[:8]}"
    log = normalise(
        run_session(sandbox.url, workspace, nemo_server.tiny_checkpoint(), tmp_path / "session.json"), workspace
    )
    differences = compare(real_session, log)
    assert not differences, f"{len(differences)} of {len(log)} calls differ:\n" + "\n".join(differences)
    assert len(log) > 80


def test_the_real_server_analysed_the_checkpoint_and_refused_the_rest(real_session):
    """What the session saw on NVIDIA's server, stated: the facts the sandbox is held to."""
    by_call = {e["call"]: e["answers"] for e in real_session}
    spec = by_call["retrieve with spec"][-1]["body"]["spec"]
    assert (spec["checkpoint_model_name"], spec["num_layers"], spec["hidden_size"]) == ("LlamaForCausalLM", 2, 64)
    assert by_call["retrieve, no checkpoint"][-1]["body"]["spec"] is None
    jobs = by_call["jobs, once ended"][-1]["body"]["data"]
    assert [j["status"] for j in jobs] == ["completed", "error"]
    assert jobs[1]["error_details"] == {"message": "Job exited with non-zero code 1, check logs for details."}
    assert by_call["retrieve while the new job runs"][-1]["body"]["spec"] == spec  # the old spec, meanwhile
    assert by_call["create model, project missing"][-1]["status"] == 422
    assert by_call["list unknown filter"][-1]["status"] == 400
    assert by_call["delete fileset in use"][-1]["status"] == 409
    assert by_call["fileset create ckpt"][-1]["status"] == 200
