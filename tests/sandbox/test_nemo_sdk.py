"""NVIDIA's own SDK judges the sandbox's NeMo Platform: ``nemo_platform`` 0.6.0 (from ``.venv-nemo``, made by
``./dev setup``; the SDK never enters the provider's environment) creates, reads, lists, patches and deletes
model entities and meets the platform's errors, and every answer is read by the SDK's own pydantic models:
nothing they do not declare, nothing they declare missing from a GET, nothing read back otherwise.

The SDK declares Requires-Python >=3.12 but is pure Python and runs on the 3.11 this project (and its CI) has:
it is installed with ``--python-version 3.12 --no-deps`` plus the HTTP client's own dependencies, and this test
is the proof that it imports and works there.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
SESSION = Path(__file__).parent / "nemo_sdk_session" / "session.py"
SDK_PYTHON = Path(os.environ.get("MODELREG_NEMO_SDK_PYTHON", REPO / ".venv-nemo" / "bin" / "python"))


@pytest.fixture(scope="module")
def sdk_session(sandbox_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The session's records by step, run once (for the module) against a freshly reset sandbox whose spec
    analysis takes 0.5 s."""
    from airflow_provider_modelreg.pytest_plugin import reset_sandbox

    if not SDK_PYTHON.exists():
        reason = f"NVIDIA's nemo_platform SDK is not installed at {SDK_PYTHON}: run `./dev setup` (it makes .venv-nemo)"
        if os.environ.get("MODELREG_REQUIRE_MLFLOW") == "1":  # ./dev test: the environments must be there
            pytest.fail(reason)
        pytest.skip(reason)
    reset_sandbox(sandbox_server)
    sandbox_server.sandbox.state.lifecycle_seconds["nemo"] = 0.5
    out = tmp_path_factory.mktemp("nemo-sdk") / "records.json"
    done = subprocess.run(
        [str(SDK_PYTHON), str(SESSION), sandbox_server.url, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1,localhost"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["sdk"] == "0.6.0"
    return {record["step"]: record for record in result["records"]}


def test_every_answer_is_read_whole_and_right_by_the_sdks_models(sdk_session):
    judged = {step: r["problems"] for step, r in sdk_session.items() if "problems" in r}
    assert len(judged) >= 15  # creates, reads, the PATCH, every list page, the jobs, the filesets
    assert {step: problems for step, problems in judged.items() if problems} == {}


def test_create_get_and_the_spec_filled_by_the_analysis_job(sdk_session):
    created = sdk_session["create"]["raw"]
    assert sdk_session["create"]["status"] == 201
    assert created["spec"] is None and sdk_session["create returned"]["spec_is_none"] is True
    # The platform stores the endpoint URL normalised (pydantic AnyUrl): host lower-cased, default port gone.
    assert sdk_session["create returned"]["url"] == "http://nim.example/v1"
    assert created["custom_fields"] == {"team": "support", "nested": {"k": [1, 2]}}
    assert created["model_providers"] == ["default/nim"] and created["trust_remote_code"] is False
    assert sdk_session["retrieve"]["raw"] == created
    filled = sdk_session["retrieve with spec"]["raw"]["spec"]
    # From the fileset's config.json, as NVIDIA's task derives it: the architecture's class, the shape.
    assert filled["checkpoint_model_name"] == "LlamaForCausalLM" and sdk_session["spec filled"]["layers"] == 2
    assert (filled["minimum_gpus_all_weights"], filled["minimum_gpus_lora"]) == (None, None)


def test_a_patch_keeps_the_old_spec_until_the_new_job_ends(sdk_session):
    patched = sdk_session["update"]["raw"]
    assert (patched["description"], patched["fileset"]) == ("v2", "sdk/ckpt-v2")
    assert sdk_session["update returned"]["layers"] == 2  # the old spec, while the new job runs
    assert sdk_session["spec after the new job"]["layers"] == 3
    jobs = sdk_session["jobs judged"]["jobs"]
    assert jobs == [["Model Spec Analyzer for model sdk/sdk-bot", "completed"]] * 2  # one job per fileset


def test_the_sdks_paging_walks_every_page(sdk_session):
    pages = [sdk_session[f"list page_size=2 page {n}"] for n in (1, 2, 3)]
    assert [p["names"] for p in pages] == [["sdk-bot", "page-0"], ["page-1", "page-2"], ["page-3"]]
    assert [p["pagination"]["page"] for p in pages] == [1, 2, 3]
    assert {p["pagination"]["total_pages"] for p in pages} == {3}
    assert "list page_size=2 page 4" not in sdk_session  # the SDK stops at total_pages
    assert sdk_session["list auto-paginated"]["names"] == ["sdk-bot", "page-0", "page-1", "page-2", "page-3"]
    assert sdk_session["list filter name page 1"]["names"] == ["page-1"]  # the SDK's filter={"name": ...}
    default = sdk_session["list default page page 1"]
    assert default["pagination"]["page_size"] == 100 and default["raw"]["sort"] == "created_at"


@pytest.mark.parametrize(
    ("step", "raised", "status", "detail"),
    [
        ("create duplicate", "ConflictError", 409, "Model with workspace 'sdk' and name 'sdk-bot' already exists"),
        ("create missing fileset", "BadRequestError", 400, "Fileset 'sdk/nowhere' not found in workspace 'sdk'"),
        ("update missing fileset", "BadRequestError", 400, "Fileset 'nowhere' not found in workspace 'sdk'"),
        ("retrieve deleted", "NotFoundError", 404, "Model with workspace 'sdk' and name 'sdk-bot' not found"),
    ],
)
def test_the_errors_are_what_the_sdk_raises_for_them(sdk_session, step, raised, status, detail):
    record = sdk_session[step]
    assert (record["raised"], record["status"], record["body"]) == (raised, status, {"detail": detail})


def test_a_name_outside_todays_rule_is_the_sdks_422_naming_the_field(sdk_session):
    record = sdk_session["create bad name"]
    assert (record["raised"], record["status"]) == ("UnprocessableEntityError", 422)
    (item,) = record["body"]["detail"]
    assert (item["loc"], item["type"]) == (["body", "name"], "string_pattern_mismatch")
    assert sdk_session["delete"] == {"step": "delete", "status": 204, "raw": None, "returned": "None"}
