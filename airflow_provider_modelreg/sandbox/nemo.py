"""NVIDIA NeMo Platform Models API v2 at its real paths: ``/apis/models/v2/workspaces/{workspace}/models``,
with the two neighbours it leans on: the Files API's filesets and the Jobs API's spec-analysis jobs.

Behaviour follows NVIDIA's own server code (``nmp/core/models`` of nemo-platform 0.6.0 and ``nhx/core/models``
of nemo-helix 0.8.1; read, not copied). Bodies are validated by pydantic models shaped like the platform's, so
a bad body gets FastAPI's genuine 422 (``{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}``);
other errors are ``{"detail": str}``.

- Workspaces and projects must be made first (the Entities API: ``POST /apis/entities/v2/workspaces``, ``.../
  workspaces/{ws}/projects``); only ``default`` and ``system`` exist from the start. A model or fileset in a
  workspace that does not exist is the server's 422, a list of its models the server's 500 "Failed to list model
  entities"; a model naming a project that does not exist is a 422.
- Timestamps are naive ISO-8601 (no zone), as NVIDIA's server (nemo-platform 0.6.0) answers them.
- A fileset must exist on the Files API (``POST /apis/files/v2/workspaces/{ws}/filesets``, as a user uploads a
  checkpoint): a create or PATCH naming one that does not is the server's 400.
- A create with a fileset (and a PATCH that changes the fileset or finds ``spec`` empty) starts a spec-analysis
  job (source ``models-system``) on the jobs route; it runs ``state.seconds("nemo")`` and then writes the spec
  derived from the fileset's uploaded ``config.json`` (as NVIDIA's model-spec task does for a Llama-shaped
  Hugging Face checkpoint). Until it ends the entity keeps the spec it had (null on a create, the old spec after a
  PATCH). A fileset without a readable ``config.json``, or an outcome rule matching the entity's name, makes the
  job end ``error`` (``error_details.message``), leaving the spec as it was.
- ``trust_remote_code`` needs admin (with auth on, a token in ``state.extra["nemo_admin_tokens"]``): else 403.
- Auth is off unless ``state.nemo_tokens`` holds accepted Bearer tokens. Every write request's raw body is kept
  in ``state.extra["nemo_requests"]`` so tests can check exactly what was sent.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
import time
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, AnyUrl, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from airflow_provider_modelreg.sandbox.state import SandboxState, public

SERVICE = "nemo"
PREFIX = "/apis/models/v2/workspaces/{workspace}/models"
# The platform's name rule since nemo-platform 0.4.0 (nemo-helix 0.8.1 still): a 422 for anything else.
# ``state.extra["nemo_name_rule"] = "0.3"`` gives workspaces and filesets the pre-0.4.0 rule.
NAME_SEGMENT = r"[a-z](?!.*--)[a-z0-9\-@.+_]{1,62}(?<!-)"
NAME_PATTERN = rf"^{NAME_SEGMENT}$"
LEGACY_NAME = re.compile(r"^[\w\-.]{1,255}$")
PROJECT_PATTERN = r"^[\w\-./]+$"
# Filesets: "name" (the model's workspace) or "workspace/name", each segment by the name rule (as helix).
FILESET = re.compile(rf"^{NAME_SEGMENT}(/{NAME_SEGMENT})?$")
LEGACY_FILESET = re.compile(r"^[\w\-.]+/[\w\-.]+$")
SortField = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]
Workspace = Annotated[str, Path(max_length=255, pattern=r"^[\w\-.]+$")]

# An Enum, not a Literal: the server's 422 for a value outside it is of type ``enum``.
FinetuningType = Enum(  # type: ignore[misc]
    "FinetuningType",
    {value: value for value in (
    "lora_merged", "all_weights", "last_layer", "top_layers", "gradual_unfreezing", "bias_only",
    "attention_only", "lora", "qlora", "adalora", "dora", "lora_plus", "prompt_tuning", "prefix_tuning",
    "p_tuning", "p_tuning_v2", "soft_prompt", "ppo", "dpo", "cdpo", "ipo", "orpo", "kto", "rrhf", "grpo",
    )},
    type=str,
)  # fmt: skip


# -- the platform's request shapes (unknown fields are ignored, as pydantic does by default) --------------
class APIEndpointData(BaseModel):
    url: AnyUrl | None = None
    model_id: str | None = None
    api_key: str | None = None
    format: str | None = None


class InferenceParams(BaseModel):
    """Every declared key is answered, null when unset (the real server's answer)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None


class ModelSpecBody(BaseModel):
    """A ``spec`` given in a create or PATCH: the real server requires the checkpoint's shape whole (a partial
    spec is a 422 listing each missing field), so no hand-written half spec is stored."""

    model_config = ConfigDict(extra="allow")

    context_size: int | None = None
    num_virtual_tokens: int | None = None
    is_chat: bool = False
    head_type: str | None = None
    is_embedding_model: bool = False
    checkpoint_model_name: str
    family: str | None = None
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    ffn_hidden_size: int
    vocab_size: int
    tied_embeddings: bool
    gated_mlp: bool
    base_num_parameters: int
    precision: str


class PromptData(BaseModel):
    system_prompt: str | None = None
    icl_few_shot_examples: str | None = None
    inference_params: InferenceParams | None = None
    system_prompt_template: str | None = None


def _name_rule(value: str) -> str:
    # Python's re, as the platform's pydantic (regex_engine="python-re"): the rule has look-arounds. Checked
    # here rather than by Field(pattern=...) since FastAPI before 0.118 builds a body field's validator without
    # the model's regex_engine (Airflow 3.0's FastAPI); the 422 is the same pydantic error.
    if not re.match(NAME_PATTERN, value):
        raise PydanticCustomError(
            "string_pattern_mismatch", "String should match pattern '{pattern}'", {"pattern": NAME_PATTERN}
        )
    return value


EntityName = Annotated[str, AfterValidator(_name_rule), Field(json_schema_extra={"pattern": NAME_PATTERN})]


class CreateModelEntityRequest(BaseModel):
    name: EntityName
    project: str | None = Field(default=None, max_length=255, pattern=PROJECT_PATTERN)
    description: str | None = Field(default=None, max_length=1000)
    spec: ModelSpecBody | None = None
    finetuning_type: FinetuningType | None = None
    fileset: str | None = None
    base_model: str | None = None
    api_endpoint: APIEndpointData | None = None
    backend_format: Literal["OPENAI_CHAT", "ANTHROPIC_MESSAGES"] | None = None
    prompt: PromptData | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None
    model_providers: list[str] | None = Field(default_factory=list)
    trust_remote_code: bool = False


class UpdateModelEntityRequest(BaseModel):
    description: str | None = Field(default=None, max_length=1000)
    spec: ModelSpecBody | None = None
    fileset: str | None = None
    finetuning_type: FinetuningType | None = None
    base_model: str | None = None
    api_endpoint: APIEndpointData | None = None
    backend_format: Literal["OPENAI_CHAT", "ANTHROPIC_MESSAGES"] | None = None
    prompt: PromptData | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None
    model_providers: list[str] | None = None
    trust_remote_code: bool | None = None


class CreateFilesetRequest(BaseModel):
    """The Files API's fileset create (its storage is the platform's default local storage here)."""

    name: EntityName = Field(max_length=63)
    description: str | None = None
    project: str | None = None
    purpose: Literal["dataset", "environment", "generic", "model"] = "generic"
    metadata: dict[str, Any] | None = None
    custom_fields: dict[str, Any] | None = None


class CreateWorkspaceRequest(BaseModel):
    name: EntityName  # the platform's name rule, checked by Python's re (see _name_rule)
    description: str | None = None


class CreateProjectRequest(BaseModel):
    name: EntityName  # the platform's name rule, checked by Python's re (see _name_rule)
    description: str | None = None


def _now() -> str:
    """A naive UTC timestamp, as the real server answers every ``created_at``/``updated_at``."""
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")


def _detail(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _legacy(state: SandboxState) -> bool:
    return state.extra.get("nemo_name_rule") == "0.3"


def _name_problem(state: SandboxState, where: str, value: str) -> JSONResponse | None:
    """FastAPI's 422 for a name outside the platform's rule (today's, or 0.3.0's when so configured)."""
    if (LEGACY_NAME if _legacy(state) else re.compile(NAME_PATTERN)).match(value):
        return None
    item = {
        "loc": where.split("."),
        "msg": f"String should match pattern '{NAME_PATTERN}'",
        "type": "string_pattern_mismatch",
    }
    return JSONResponse({"detail": [item]}, status_code=422)


def _fileset_ref(fileset: str, workspace: str) -> tuple[str, str] | str:
    """(workspace, name) of a fileset reference, as the platform's ``parse_entity_ref`` reads it (a bare name is
    in the model's workspace), or the server's message for one it cannot read."""
    parts = fileset.strip().split("/")
    if len(parts) > 2 or any(p == "" for p in parts):
        return f"invalid entity reference {fileset!r}; expected 'name' or 'workspace/name'"
    return (parts[0], parts[1]) if len(parts) == 2 else (workspace, parts[0])


def _fileset_problem(state: SandboxState, workspace: str, fileset: str | None) -> JSONResponse | None:
    """The server's answer to a fileset it refuses, else None.

    nemo-helix 0.8.1 validates the reference's shape in the body (a 422 like any field; the pre-0.4.0 rule, when
    so configured, is checked by nemo-platform 0.3.0's 400). Then, as both servers do (``check_fileset_access``),
    the fileset is read from the Files API: one that does not exist is a ValueError the create and update
    routes answer 400, ``Fileset '<ref>' not found in workspace '<ws>'``.
    """
    if fileset is None:
        return None
    if _legacy(state):
        if not LEGACY_FILESET.match(fileset):
            return _detail(400, f"Invalid fileset '{fileset}': expected format {{workspace}}/{{fileset_name}}")
    elif not FILESET.match(fileset):
        item = {
            "loc": ["body", "fileset"],
            "msg": f"String should match pattern '^{FILESET.pattern.strip('^$')}$'",
            "type": "string_pattern_mismatch",
        }
        return JSONResponse({"detail": [item]}, status_code=422)
    ref = _fileset_ref(fileset, workspace)
    if isinstance(ref, str):
        return _detail(400, ref)
    if state.get(FILESETS, _key(*ref)) is None:
        return _detail(400, f"Fileset '{fileset}' not found in workspace '{ref[0]}'")
    return None


def _key(workspace: str, name: str) -> str:
    return f"{workspace}/{name}"


def _fileset_record(state: SandboxState, workspace: str, fileset: str) -> dict[str, Any] | None:
    ref = _fileset_ref(fileset, workspace)
    return None if isinstance(ref, str) else state.get(FILESETS, _key(*ref))


def _derived_spec(config: dict[str, Any]) -> dict[str, Any]:
    """What NVIDIA's model-spec task derives from a Llama-shaped Hugging Face ``config.json`` (nemo-platform
    0.6.0, seen on its real server): the architecture's class name, the shape, and the parameter count of the
    weights the shape implies (embeddings, per layer the attention and gated-MLP projections and two norms, the
    final norm, the output head unless tied). ``context_size`` and ``is_chat`` come from elsewhere (a model card,
    a chat template), so a bare checkpoint answers null and false. Raises KeyError/TypeError/ValueError where
    the task would fail."""
    hidden = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    ffn = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    tied = bool(config.get("tie_word_embeddings", False))
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    per_layer = attention + 3 * hidden * ffn + 2 * hidden
    parameters = vocab * hidden + layers * per_layer + hidden + (0 if tied else vocab * hidden)
    return {
        "context_size": None,
        "num_virtual_tokens": None,
        "is_chat": False,
        "head_type": "causal_lm",
        "is_embedding_model": False,
        "checkpoint_model_name": str(config["architectures"][0]),
        "family": str(config["model_type"]),
        "num_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "ffn_hidden_size": ffn,
        "vocab_size": vocab,
        "tied_embeddings": tied,
        "gated_mlp": True,
        "base_num_parameters": parameters,
        "precision": str(config.get("dtype") or config.get("torch_dtype") or "float32"),
        "moe_config": None,
        "mamba_config": None,
        "sliding_window_config": None,
        "linear_layers": None,
        "chat_template": None,
        "tool_call_config": None,
        "minimum_gpus_all_weights": None,
        "minimum_gpus_lora": None,
    }


# A tiny Llama-shaped checkpoint's ``config.json`` (2 layers, hidden size 64, what scripts/nemo_tiny_checkpoint.py
# makes): the demo and the tests upload it into the filesets they name, as a user uploads a checkpoint.
TINY_LLAMA_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "dtype": "float32",
    "head_dim": 16,
    "hidden_act": "silu",
    "hidden_size": 64,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
    "vocab_size": 256,
}


# How NVIDIA's Docker backend words a task that failed (the model-spec task exits 1 on any error).
TASK_FAILED = "Job exited with non-zero code 1, check logs for details."


def _analyse(state: SandboxState, job: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(spec, None) from the fileset's checkpoint, or (None, the job's error message)."""
    if job["_failure"]:
        return None, job["_failure"]
    fileset = _fileset_record(state, job["workspace"], job["_fileset"])
    content = ((fileset or {}).get("_files") or {}).get("config.json", {}).get("content")
    try:
        return _derived_spec(json.loads(content)), None
    except (TypeError, ValueError, KeyError, IndexError):
        return None, TASK_FAILED


def _settle_spec_job(state: SandboxState, record: dict[str, Any]) -> None:
    """Apply the entity's newest spec-analysis job once it has ended: ``completed`` writes the spec it derived,
    ``error`` leaves the spec as it was (null for ever on a create). Until then the old spec stays."""
    job = state.get(JOBS, record.get("_spec_job") or "")
    if job is None or job.get("_applied") or job_status(state, job) not in ("completed", "error"):
        return
    with state.lock:
        job["_applied"] = True
        if job.get("_spec") is not None:
            record["spec"] = job["_spec"]
            record["updated_at"] = _now()


def view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    """The entity as the platform answers it. Like ``_model_to_model_entity`` the answer nulls the
    ``minimum_gpus_*`` fields (and, without ``verbose``, ``linear_layers``) whatever is stored."""
    _settle_spec_job(state, record)
    answer = public(record)
    if isinstance(answer.get("spec"), dict):
        answer["spec"] = answer["spec"] | {"minimum_gpus_all_weights": None, "minimum_gpus_lora": None}
        answer["spec"]["linear_layers"] = None
    return answer


# Fields of the entity that are the platform's own models (a list answer drops their nulls); custom_fields and
# ownership are free-form dicts, whose null values pydantic's exclude_none keeps.
_MODEL_FIELDS = ("spec", "api_endpoint", "prompt")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def list_view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    """A list item: the list route has ``response_model_exclude_none``, so null fields are left out."""
    answer = view(state, record)
    return {k: (_without_nulls(v) if k in _MODEL_FIELDS else v) for k, v in answer.items() if v is not None}


JOBS_PREFIX = "/apis/jobs/v2/workspaces/{workspace}/jobs"
FILES_PREFIX = "/apis/files/v2/workspaces/{workspace}/filesets"
JOBS = "nemo_jobs"
FILESETS = "nemo_filesets"


def _start_spec_job(state: SandboxState, record: dict[str, Any]) -> None:
    """The platform's spec-analysis job for an entity's fileset (source models-system), on the jobs API, in
    the shape NVIDIA's server answers it."""
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    job_name = f"models-system-{suffix}"
    now = _now()
    no_secret = {"from_secret": None}
    job = {
        "id": f"platform-job-{state.new_hex_id(22)}",
        "attempt_id": f"platform-job-attempt-{state.new_hex_id(22)}",
        "name": job_name,
        "workspace": record["workspace"],
        "project": record.get("project"),
        "description": f"Model Spec Analyzer for model {record['workspace']}/{record['name']}",
        "source": "models-system",
        "spec": {},
        # The one step the models service asks for (``start_update_model_spec_job``): a CPU container.
        "platform_spec": {
            "steps": [
                {
                    "name": "model-spec-analysis",
                    "environment": [
                        {"name": "NEMO_JOB_EPHEMERAL_TASK_STORAGE_PATH", "value": "/var/run/scratch/task"} | no_secret,
                        {"name": "GPU_MEM_GB", "value": "80"} | no_secret,
                    ],
                    "executor": {
                        "provider": "cpu",
                        "profile": "gpu",
                        "container": {
                            "image": "my-registry/nmp-customizer-tasks:local",
                            "entrypoint": ["/opt/venv/bin/python"],
                            "command": ["-m", "nmp.core.models.tasks.model_spec"],
                        },
                        "resources": {
                            "requests": {"cpu": "1", "memory": "8Gi"},
                            "limits": {"cpu": "4", "memory": "32Gi"},
                            "num_nodes": 1,
                            "num_gpus": None,
                            "shm_size": None,
                        },
                    },
                    "config": {"workspace": record["workspace"], "name": record["name"]},
                    "lifecycle": {"staleness_timeout_seconds": 0},
                }
            ],
            "secrets": None,
        },
        "fileset": f"job-fileset-{job_name}",
        "output_location": None,
        "status_details": {},
        "error_details": None,
        "created_at": now,
        "updated_at": now,
        "ownership": record.get("ownership"),
        "custom_fields": None,
        "_started": time.time(),
        "_fileset": record["fileset"],
        "_failure": state.failure_for(SERVICE, record["name"]),
    }
    state.store(JOBS, job_name, job)
    record["_spec_job"] = job_name


# A cancelled job answers ``cancelling`` until the controller has stopped its task.
CANCELLING_SECONDS = 0.2


def job_status(state: SandboxState, job: dict[str, Any]) -> str:
    """``active`` while it runs (``state.seconds("nemo")``), then ``completed`` or ``error`` for good; after a
    cancel, ``cancelling`` for a moment, then ``cancelled``."""
    if "_cancel_requested" in job and "_ended" not in job:
        if time.time() - job["_cancel_requested"] < CANCELLING_SECONDS:
            return "cancelling"
        job["_ended"] = "cancelled"
        job["updated_at"] = _now()
    if "_ended" not in job:
        if time.time() - job["_started"] < state.seconds(SERVICE):
            return "active"
        with state.lock:
            spec, failure = _analyse(state, job)
            job["_spec"] = spec
            job["_ended"] = "error" if failure else "completed"
            if failure:
                job["error_details"] = {"message": failure}
            job["updated_at"] = _now()
    return str(job["_ended"])


def job_view(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    """The job as GET and cancel answer it: every field, nulls too."""
    status = job_status(state, job)
    return public(job) | {"status": status}


def job_list_item(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    """A jobs-list item: the list route leaves out every null, at any depth."""
    return _without_nulls(job_view(state, job))


def _is_admin(state: SandboxState, request: Request) -> bool:
    """With auth off everyone acts as admin; with auth on, only ``state.extra["nemo_admin_tokens"]``."""
    if not state.nemo_tokens:
        return True
    token = request.headers.get("authorization", "").partition(" ")[2]
    return token in state.extra.get("nemo_admin_tokens", set())


# The server's trust_remote_code refusal (``set_trust_remote_code``: no allow-listed source, no permission).
TRUST_REFUSED = "Insufficient permissions to set the trust_remote_code field"

# The list's documented filters (``ModelEntityFilter`` of nemo-helix 0.8.1, plus the entity base fields the
# filter parser accepts); anything else is the parser's 400.
FILTER_FIELDS = frozenset(
    {
        "name", "project", "workspace", "base_model", "adapters", "finetuning_type", "prompt", "lora_enabled",
        "description", "fileset", "created_at", "updated_at", "id", "entity_type",
    }
)  # fmt: skip
# The entity store under the list caps a page at 1000 (page_size 1..1000, page >= 1): the models route does
# not check, so anything outside reaches the store, whose refusal the route answers as a 500.
MAX_PAGE_SIZE = 1000


# The filter operators the list's query string carries (``filter[name][$like]=...``; the SDK's StringFilter and
# DatetimeFilter). ``$in``/``$nin`` take a comma-separated list; ``$like`` is the entity store's case-insensitive
# "contains" (SQL ILIKE '%value%', so ``%`` inside is a wildcard too).
FILTER_OPERATORS = frozenset({"$eq", "$like", "$in", "$nin", "$gte", "$lte"})
_FILTER_KEY = re.compile(r"^filter\[([^\]]+)\](?:\[([^\]]+)\])?$")


def _filters(request: Request) -> dict[str, tuple[str, str]] | JSONResponse:
    """{field: (operator, value)}; an unknown field is the parser's 400."""
    found: dict[str, tuple[str, str]] = {}
    for key, value in request.query_params.items():
        if not key.startswith("filter["):
            continue
        match = _FILTER_KEY.match(key)
        field, operator = (match.group(1), match.group(2) or "$eq") if match else (key[7:].rstrip("]"), "$eq")
        if field not in FILTER_FIELDS:
            return _detail(400, f"Unknown filter field '{field}'. Valid fields: {sorted(FILTER_FIELDS)}")
        if operator not in FILTER_OPERATORS:
            return _detail(400, f"Unknown filter operator '{operator}' for field '{field}'")
        found[field] = (operator, value)
    return found


def _like(pattern: str, value: str) -> bool:
    parts = (re.escape(p) for p in pattern.split("%"))
    return re.search(".*".join(parts).replace("_", "."), value, re.IGNORECASE) is not None


def _compare(operator: str, wanted: str, value: Any) -> bool:
    text = "" if value is None else str(value)
    if operator == "$like":
        return value is not None and _like(wanted, text)
    if operator == "$in":
        return text in wanted.split(",")
    if operator == "$nin":
        return text not in wanted.split(",")
    if operator in ("$gte", "$lte"):
        if value is None:
            return False
        bound = datetime.fromisoformat(wanted.replace("Z", "+00:00")).replace(tzinfo=None)
        moment = datetime.fromisoformat(text)
        return moment >= bound if operator == "$gte" else moment <= bound
    return text == wanted


# Filters that read "has one" for true/false (the server's ModelEntityFilter: fileset, base_model,
# finetuning_type, adapters); any other value is compared with the stored one.
HAS_FILTERS = ("fileset", "base_model", "finetuning_type")


def _matches(record: dict[str, Any], filters: dict[str, tuple[str, str]]) -> bool:
    for field, (operator, wanted) in filters.items():
        value = record.get(field)
        if field == "model_providers":
            if wanted not in (value or []):
                return False
            continue
        if operator == "$eq" and wanted in ("true", "false") and field in HAS_FILTERS:
            if bool(value) != (wanted == "true"):
                return False
        elif not _compare(operator, wanted, value):
            return False
    return True


def _paged(items: list[dict[str, Any]], page: int, page_size: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    chunk = items[(page - 1) * page_size : page * page_size]
    return chunk, {
        "page": page,
        "page_size": page_size,
        "current_page_size": len(chunk),
        "total_pages": math.ceil(len(items) / page_size),
        "total_results": len(items),
    }


WORKSPACES = "nemo_workspaces"
PROJECTS = "nemo_projects"
# The workspaces a fresh platform has (its seed).
BUILT_IN_WORKSPACES = {
    "default": "General-purpose workspace (all users have write access)",
    "system": "Platform-provided resources (read-only for users)",
}


def add_workspace(state: SandboxState, name: str, description: str | None = None) -> dict[str, Any] | None:
    """Make the workspace exist (``POST /apis/entities/v2/workspaces``); None when it already does."""
    with state.lock:
        if workspace_record(state, name) is not None:
            return None
        now = _now()
        record = {
            "id": f"workspace-{state.new_hex_id(22)}",
            "name": name,
            "description": description,
            "created_at": now,
            "created_by": "",
            "updated_at": now,
            "updated_by": "",
        }
        return state.store(WORKSPACES, name, record)


def workspace_record(state: SandboxState, name: str) -> dict[str, Any] | None:
    with state.lock:
        record = state.get(WORKSPACES, name)
        if record is None and name in BUILT_IN_WORKSPACES:
            now = _now()
            record = {
                "id": f"workspace-{state.new_hex_id(22)}",
                "name": name,
                "description": BUILT_IN_WORKSPACES[name],
                "created_at": now,
                "created_by": None,
                "updated_at": now,
                "updated_by": None,
            }
            state.store(WORKSPACES, name, record)
        return record


def add_project(state: SandboxState, workspace: str, name: str) -> dict[str, Any] | None:
    """Make the project exist in the workspace (which must exist); None when it already does."""
    with state.lock:
        if state.get(PROJECTS, _key(workspace, name)) is not None:
            return None
        now = _now()
        record = {
            "id": f"project-{state.new_hex_id(22)}",
            "name": name,
            "workspace": workspace,
            "description": None,
            "created_at": now,
            "updated_at": now,
        }
        return state.store(PROJECTS, _key(workspace, name), record)


def _missing_workspace(workspace: str) -> JSONResponse:
    return _detail(422, f"Workspace '{workspace}' does not exist. Please create the workspace first.")


def add_fileset(state: SandboxState, ref: str, **fields: Any) -> dict[str, Any] | None:
    """Make the fileset ``workspace/name`` exist (as a checkpoint upload would), and its workspace with it;
    None when it already does. ``files={path: bytes}`` uploads files into it."""
    workspace, _, name = ref.partition("/")
    with state.lock:
        add_workspace(state, workspace)
        if state.get(FILESETS, ref) is not None:
            return None
        now = _now()
        record = {
            "id": f"fileset-{state.new_hex_id(22)}",
            "name": name,
            "workspace": workspace,
            "description": fields.get("description") or "",
            "purpose": fields.get("purpose") or "model",
            "storage": {
                "read_chunk_size": 1048576,
                "type": "local",
                "path": f"/data/files_storage/filesets/{workspace}/{name}",
                "write_buffer_size": 16777216,
            },
            "metadata": {"dataset": None, "model": None, "environment": None} | (fields.get("metadata") or {}),
            "custom_fields": fields.get("custom_fields") or {},
            "project": fields.get("project") or "",
            "created_at": now,
            "updated_at": now,
            "_files": {},
        }
        state.store(FILESETS, ref, record)
        for path, content in (fields.get("files") or {}).items():
            put_file(record, path, content)
        return record


def put_file(fileset: dict[str, Any], path: str, content: bytes) -> dict[str, Any]:
    """Store one file of a fileset (its bytes kept only for ``config.json``, which the spec analysis reads)."""
    kept = content if path.rsplit("/", 1)[-1] == "config.json" else None
    fileset["_files"][path] = {"size": len(content), "content": kept}
    return _file_view(fileset, path, cache_status=None)


def _file_view(fileset: dict[str, Any], path: str, cache_status: str | None) -> dict[str, Any]:
    ref = f"{fileset['workspace']}/{fileset['name']}"
    return {
        "file_ref": f"{ref}#{path}",
        "file_url": f"/apis/files/v2/workspaces/{fileset['workspace']}/filesets/{fileset['name']}/-/{path}",
        "path": path,
        "size": fileset["_files"][path]["size"],
        "cache_status": cache_status,
    }


def router(state: SandboxState) -> APIRouter:
    def authorised(request: Request) -> None:
        tokens = state.nemo_tokens
        if not tokens:  # the platform's default: auth off
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token not in tokens:
            raise HTTPException(status_code=401, detail="Not authenticated")

    async def remember(request: Request) -> None:
        # A dependency runs before body validation, so even a body answered 422 is recorded.
        raw = await request.body()  # Starlette caches it: exactly the bytes FastAPI validates
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with state.lock:
            state.extra.setdefault("nemo_requests", []).append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "body": body,
                    "authorization": "authorization" in request.headers,
                }
            )

    api = APIRouter(prefix=PREFIX, dependencies=[Depends(authorised), Depends(remember)])

    def project_problem(workspace: str, project: str | None) -> JSONResponse | None:
        if project and state.get(PROJECTS, _key(workspace, project)) is None:
            return _detail(
                422, f"Project '{project}' does not exist in workspace '{workspace}'. Please create the project first."
            )
        return None

    @api.post("", status_code=201)
    async def create_model(workspace: Workspace, body: CreateModelEntityRequest, request: Request) -> Any:
        if problem := _name_problem(state, "path.workspace", workspace):
            return problem
        if workspace_record(state, workspace) is None:
            return _missing_workspace(workspace)
        if problem := project_problem(workspace, body.project):
            return problem
        if problem := _fileset_problem(state, workspace, body.fileset):
            return problem
        if body.trust_remote_code and not _is_admin(state, request):
            return _detail(403, TRUST_REFUSED)
        key = _key(workspace, body.name)
        with state.lock:
            if state.get(SERVICE, key) is not None:
                state.bump(f"{SERVICE}.conflicts")
                return _detail(409, f"Model with workspace '{workspace}' and name '{body.name}' already exists")
            now = _now()
            record = {
                "id": f"model-{state.new_hex_id(22)}",
                "name": body.name,
                "workspace": workspace,
                "created_at": now,
                "updated_at": now,
                **body.model_dump(mode="json", exclude={"name"}),
                "adapters": [],
            }
            record["custom_fields"] = record["custom_fields"] or {}
            record["model_providers"] = record["model_providers"] or []
            state.store(SERVICE, key, record)
            if record.get("fileset"):
                _start_spec_job(state, record)
            return view(state, record)

    @api.get("/{name}")
    async def get_model(workspace: Workspace, name: str) -> Any:
        record = state.get(SERVICE, _key(workspace, name))
        if record is None:
            return _detail(404, f"Model with workspace '{workspace}' and name '{name}' not found")
        return view(state, record)

    @api.get("")
    async def list_models(
        workspace: Workspace,
        request: Request,
        page: int = 1,
        page_size: int = 100,  # the platform's default
        sort: SortField = "created_at",
    ) -> Any:
        state.bump(f"{SERVICE}.list_pages")
        filters = _filters(request)
        if isinstance(filters, JSONResponse):
            return filters
        # The real server's answer for a workspace that does not exist, as for a page the store refuses.
        if not (1 <= page_size <= MAX_PAGE_SIZE and page >= 1) or workspace_record(state, workspace) is None:
            return _detail(500, "Failed to list model entities")
        in_workspace = filters.pop("workspace", ("$eq", workspace))[1]
        records = [r for r in state.all(SERVICE) if r["workspace"] == in_workspace and _matches(r, filters)]
        field, reverse = sort.lstrip("-"), sort.startswith("-")
        records.sort(key=lambda r: (r.get(field) or "", r["_created"]), reverse=reverse)
        chunk, pagination = _paged(records, page, page_size)
        # The server's Page also echoes the sort (its ``filter`` is None, left out like every null).
        return {"data": [list_view(state, r) for r in chunk], "pagination": pagination, "sort": sort}

    @api.patch("/{name}")
    async def update_model(workspace: Workspace, name: str, body: UpdateModelEntityRequest, request: Request) -> Any:
        with state.lock:
            record = state.get(SERVICE, _key(workspace, name))
            if record is None:
                return _detail(404, f"Model with workspace '{workspace}' and name '{name}' not found")
            if body.fileset and (problem := _fileset_problem(state, workspace, body.fileset)):
                return problem
            # As the server: a PATCH naming trust_remote_code or a fileset re-checks the permission for the
            # trust the entity will have.
            wants_trust = body.trust_remote_code or record["trust_remote_code"]
            if (body.trust_remote_code or body.fileset) and wants_trust and not _is_admin(state, request):
                return _detail(403, TRUST_REFUSED)
            _settle_spec_job(state, record)
            original_fileset = record.get("fileset")
            # Only the fields given a value change ("an empty field keeps the old value"); backend_format may
            # be cleared with an explicit null.
            changes = body.model_dump(mode="json", exclude_none=True)
            if "backend_format" in body.model_fields_set:
                changes["backend_format"] = body.backend_format
            record.update(changes)
            record["updated_at"] = _now()
            # The server's rule: a new job when the fileset changed or the spec is still empty. The old spec is
            # answered until that job ends.
            if record.get("fileset") and (record["fileset"] != original_fileset or not record.get("spec")):
                _start_spec_job(state, record)
            return view(state, record)

    @api.delete("/{name}", status_code=204, response_model=None, response_class=Response)
    async def delete_model(workspace: Workspace, name: str) -> Response:
        with state.lock:
            if state.resources.get(SERVICE, {}).pop(_key(workspace, name), None) is None:
                return _detail(404, f"Model with workspace '{workspace}' and name '{name}' not found")
        return Response(status_code=204)

    jobs = APIRouter(prefix=JOBS_PREFIX, dependencies=[Depends(authorised)])

    @jobs.get("")
    async def list_jobs(
        workspace: Workspace,
        page: Annotated[int, Query(gt=0)] = 1,
        page_size: Annotated[int, Query(gt=0)] = 10,  # the jobs API's default; it sets no maximum
        sort: Literal["created_at", "-created_at", "updated_at", "-updated_at", "source", "-source"] = "-created_at",
        source: Annotated[str | None, Query(alias="filter[source]")] = None,
        status: Annotated[str | None, Query(alias="filter[status]")] = None,
        name: Annotated[str | None, Query(alias="filter[name]")] = None,
    ) -> Any:
        state.bump(f"{SERVICE}.job_lists")
        found = [
            j
            for j in state.all(JOBS)
            if j["workspace"] == workspace and source in (None, j["source"]) and name in (None, j["name"])
        ]
        field = sort.lstrip("-")
        found.sort(key=lambda j: (j[field], j["created_at"]), reverse=sort.startswith("-"))
        chunk, pagination = _paged(found, page, page_size)
        # As the real jobs API: the status (computed per job) filters the page it fetched, so the counts are
        # those of the page and the workspace before that filter.
        chunk = [j for j in chunk if status in (None, job_status(state, j))]
        pagination["current_page_size"] = len(chunk)
        pagination["total_pages"] = max(1, pagination["total_pages"])  # the jobs API says 1 page when empty
        answer: dict[str, Any] = {"data": [job_list_item(state, j) for j in chunk], "pagination": pagination}
        answer["sort"] = sort
        # The jobs API echoes the filters it applied, each as an ``$eq``.
        applied = {k: {"$eq": v} for k, v in (("name", name), ("source", source), ("status", status)) if v is not None}
        if applied:
            answer["filter"] = applied
        return answer

    @jobs.get("/{name}")
    async def get_job(workspace: Workspace, name: str) -> Any:
        job = state.get(JOBS, name)
        if job is None or job["workspace"] != workspace:
            return _detail(404, f"Job '{name}' not found in workspace '{workspace}'.")
        return job_view(state, job)

    @jobs.post("/{name}/cancel")
    async def cancel_job(workspace: Workspace, name: str) -> Any:
        """As nemo-platform 0.6.0's jobs API: 404 for an unknown job; a running job answers ``cancelling`` (then
        ``cancelled`` once its task is stopped); an ended job's cancel changes nothing and answers it, 200. A
        cancelled spec analysis leaves its entity's spec as it was."""
        job = state.get(JOBS, name)
        if job is None or job["workspace"] != workspace:
            return _detail(404, f"Job '{name}' not found in workspace '{workspace}'.")
        with state.lock:
            if job_status(state, job) == "active":
                job["_cancel_requested"] = time.time()
                job["updated_at"] = _now()
        return job_view(state, job)

    entities = APIRouter(prefix="/apis/entities/v2/workspaces", dependencies=[Depends(authorised)])

    @entities.post("", status_code=201)
    async def create_workspace(body: CreateWorkspaceRequest) -> Any:
        record = add_workspace(state, body.name, body.description)
        if record is None:
            return _detail(409, f"Workspace '{body.name}' already exists")
        return public(record)

    @entities.get("/{name}")
    async def get_workspace(name: str) -> Any:
        record = workspace_record(state, name)
        if record is None:
            return _detail(404, f"Workspace '{name}' not found")
        return public(record)

    @entities.post("/{workspace}/projects", status_code=201)
    async def create_project(workspace: str, body: CreateProjectRequest) -> Any:
        if workspace_record(state, workspace) is None:  # the entity store's own words, as the real server
            return _detail(422, "Referenced resource does not exist.")
        record = add_project(state, workspace, body.name)
        if record is None:
            return _detail(409, f"Project '{body.name}' already exists in workspace '{workspace}'.")
        return public(record)

    files = APIRouter(prefix=FILES_PREFIX, dependencies=[Depends(authorised)])

    @files.post("", status_code=200)  # the Files API answers a create 200, not 201
    async def create_fileset(workspace: Workspace, body: CreateFilesetRequest) -> Any:
        if workspace_record(state, workspace) is None:
            return _missing_workspace(workspace)
        record = add_fileset(state, f"{workspace}/{body.name}", **body.model_dump(exclude={"name"}))
        if record is None:
            return _detail(409, f"Fileset '{workspace}/{body.name}' already exists")
        return public(record)

    def fileset_or_404(workspace: str, name: str) -> dict[str, Any] | JSONResponse:
        record = state.get(FILESETS, _key(workspace, name))
        if record is None:
            return _detail(404, f"Fileset '{name}' not found in workspace '{workspace}'")
        return record

    @files.get("/{name}")
    async def get_fileset(workspace: Workspace, name: str) -> Any:
        record = fileset_or_404(workspace, name)
        return record if isinstance(record, JSONResponse) else public(record)

    @files.delete("/{name}")
    async def delete_fileset(workspace: Workspace, name: str) -> Any:
        """A fileset a model entity names cannot be deleted: the Files API's 409."""
        with state.lock:
            record = fileset_or_404(workspace, name)
            if isinstance(record, JSONResponse):
                return record
            users = [
                m
                for m in state.all(SERVICE)
                if m.get("fileset") and _fileset_ref(m["fileset"], m["workspace"]) == (workspace, name)
            ]
            if users:
                return _detail(
                    409,
                    f"Cannot delete fileset '{workspace}/{name}' because {len(users)} model entity reference(s) and "
                    "0 adapter entity reference(s) still use it. Relink or delete the dependent entities first.",
                )
            state.resources.get(FILESETS, {}).pop(_key(workspace, name), None)
        return public(record)

    @files.put("/{name}/-/{path:path}")
    async def upload_file(workspace: Workspace, name: str, path: str, request: Request) -> Any:
        record = fileset_or_404(workspace, name)
        if isinstance(record, JSONResponse):
            return record
        return put_file(record, path, await request.body())

    @files.get("/{name}/files")
    async def list_files(workspace: Workspace, name: str) -> Any:
        record = fileset_or_404(workspace, name)
        if isinstance(record, JSONResponse):
            return record
        # Newest upload first, as the real Files API lists a local fileset.
        paths = list(reversed(record["_files"]))
        return {"data": [_file_view(record, p, cache_status="not_cacheable") for p in paths]}

    both = APIRouter()
    for part in (api, jobs, entities, files):
        both.include_router(part)
    return both
