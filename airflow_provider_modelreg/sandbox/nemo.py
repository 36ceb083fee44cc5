"""NVIDIA NeMo Platform Models API v2 at its real paths: ``/apis/models/v2/workspaces/{workspace}/models``,
with the two neighbours it leans on: the Files API's filesets and the Jobs API's spec-analysis jobs.

Behaviour follows NVIDIA's own server code (``nmp/core/models`` of nemo-platform 0.6.0 and ``nhx/core/models``
of nemo-helix 0.8.1; read, not copied). Bodies are validated by pydantic models shaped like the platform's, so
a bad body gets FastAPI's genuine 422 (``{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}``);
other errors are ``{"detail": str}``.

- A fileset must exist on the Files API (``POST /apis/files/v2/workspaces/{ws}/filesets``, as a user uploads a
  checkpoint): a create or PATCH naming one that does not is the server's 400.
- A create with a fileset (and a PATCH that changes the fileset or finds ``spec`` empty) starts a spec-analysis
  job (source ``models-system``) on the jobs route; it runs ``state.seconds("nemo")`` and then writes ``spec``.
  Until it ends the entity keeps the spec it had (null on a create, the old spec after a PATCH). An outcome rule
  matching the entity's name makes the job end ``error``, leaving the spec as it was.
- ``trust_remote_code`` needs admin (with auth on, a token in ``state.extra["nemo_admin_tokens"]``): else 403.
- Auth is off unless ``state.nemo_tokens`` holds accepted Bearer tokens. Every write request's raw body is kept
  in ``state.extra["nemo_requests"]`` so tests can check exactly what was sent.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
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

FinetuningType = Literal[
    "lora_merged", "all_weights", "last_layer", "top_layers", "gradual_unfreezing", "bias_only",
    "attention_only", "lora", "qlora", "adalora", "dora", "lora_plus", "prompt_tuning", "prefix_tuning",
    "p_tuning", "p_tuning_v2", "soft_prompt", "ppo", "dpo", "cdpo", "ipo", "orpo", "kto", "rrhf", "grpo",
]  # fmt: skip


# -- the platform's request shapes (unknown fields are ignored, as pydantic does by default) --------------
class APIEndpointData(BaseModel):
    url: AnyUrl | None = None
    model_id: str | None = None
    api_key: str | None = None
    format: str | None = None


class InferenceParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)


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
    spec: dict[str, Any] | None = None
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
    spec: dict[str, Any] | None = None
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


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


def _generated_spec(fileset: str) -> dict[str, Any]:
    """What the platform's spec analysis derives from a checkpoint (a Llama-3.1-8B-shaped one here), in the
    shape of the platform's ``ModelSpec`` (every field, as a GET answers it)."""
    return {
        "context_size": 131072,
        "num_virtual_tokens": None,
        "is_chat": True,
        "head_type": "causal_lm",
        "is_embedding_model": False,
        "checkpoint_model_name": fileset.rsplit("/", 1)[-1],
        "family": "llama",
        "num_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_kv_heads": 8,
        "ffn_hidden_size": 14336,
        "vocab_size": 128256,
        "tied_embeddings": False,
        "gated_mlp": True,
        "base_num_parameters": 8030261248,
        "precision": "bfloat16",
        "moe_config": None,
        "mamba_config": None,
        "sliding_window_config": None,
        "linear_layers": None,
        "chat_template": None,
        "tool_call_config": None,
        "minimum_gpus_all_weights": None,
        "minimum_gpus_lora": None,
    }


def _settle_spec_job(state: SandboxState, record: dict[str, Any]) -> None:
    """Apply the entity's newest spec-analysis job once it has ended: ``completed`` writes the spec it derived,
    ``error`` leaves the spec as it was (null for ever on a create). Until then the old spec stays."""
    job = state.get(JOBS, record.get("_spec_job") or "")
    if job is None or job.get("_applied") or job_status(state, job) not in ("completed", "error"):
        return
    with state.lock:
        job["_applied"] = True
        if not job["_failure"]:
            record["spec"] = _generated_spec(job["_fileset"])


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
    """The platform's spec-analysis job for an entity's fileset (source models-system), on the jobs API."""
    job_name = f"job-{state.new_hex_id(16)}"
    now = _now()
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
                    "executor": {
                        "provider": "cpu",
                        "profile": "gpu",
                        "container": {
                            "image": "nmp-customizer-tasks",
                            "entrypoint": ["/opt/venv/bin/python"],
                            "command": ["-m", "nmp.core.models.tasks.model_spec"],
                        },
                        "resources": {
                            "requests": {"cpu": "1", "memory": "8Gi"},
                            "limits": {"cpu": "4", "memory": "32Gi"},
                        },
                    },
                    "config": {"workspace": record["workspace"], "name": record["name"]},
                }
            ]
        },
        "fileset": f"{record['workspace']}/{job_name}-artifacts",
        "status_details": {},
        "created_at": now,
        "updated_at": now,
        "ownership": record.get("ownership"),
        "_started": time.time(),
        "_fileset": record["fileset"],
        "_failure": state.failure_for(SERVICE, record["name"]),
    }
    state.store(JOBS, job_name, job)
    record["_spec_job"] = job_name


def job_status(state: SandboxState, job: dict[str, Any]) -> str:
    """``active`` while it runs (``state.seconds("nemo")``), then ``completed`` or ``error`` for good (or
    ``cancelled``, when the jobs API's cancel came first)."""
    if "_ended" not in job:
        if time.time() - job["_started"] < state.seconds(SERVICE):
            return "active"
        job["_ended"] = "error" if job["_failure"] else "completed"
    return job["_ended"]


def job_view(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    answer = public(job) | {"status": job_status(state, job), "error_details": None}
    if answer["status"] == "error":
        answer["error_details"] = {"message": job["_failure"]}
    return answer


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
        "description", "fileset", "family", "model_providers", "created_at", "updated_at", "id", "entity_type",
    }
)  # fmt: skip
# The entity store under the list caps a page at 1000 (page_size 1..1000, page >= 1): the models route does
# not check, so anything outside reaches the store, whose refusal the route answers as a 500.
MAX_PAGE_SIZE = 1000


def _filters(request: Request) -> dict[str, str] | JSONResponse:
    found: dict[str, str] = {}
    for key, value in request.query_params.items():
        if key.startswith("filter[") and key.endswith("]"):
            field = key[len("filter[") : -1]
            if field not in FILTER_FIELDS:
                return _detail(400, f"Unknown filter field '{field}'. Valid fields: {sorted(FILTER_FIELDS)}")
            found[field] = value
    return found


def _matches(record: dict[str, Any], filters: dict[str, str]) -> bool:
    """Equality on the documented fields; ``true``/``false`` on the has-a fields (fileset, base_model, ...)."""
    for field, wanted in filters.items():
        if field == "family":
            value = (record.get("spec") or {}).get("family")
        elif field == "model_providers":
            if wanted not in (record.get("model_providers") or []):
                return False
            continue
        else:
            value = record.get(field)
        if wanted in ("true", "false") and field in ("fileset", "base_model", "prompt", "finetuning_type"):
            if bool(value) != (wanted == "true"):
                return False
        elif field == "fileset" and "/" not in wanted:  # a bare name matches it in the model's workspace too
            if value not in (wanted, f"{record['workspace']}/{wanted}"):
                return False
        elif str(value) != wanted:
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


def add_fileset(state: SandboxState, ref: str, **fields: Any) -> dict[str, Any] | None:
    """Make the fileset ``workspace/name`` exist (as a checkpoint upload would); None when it already does."""
    workspace, _, name = ref.partition("/")
    with state.lock:
        if state.get(FILESETS, ref) is not None:
            return None
        now = _now()
        record = {
            "id": f"fileset-{state.new_hex_id(22)}",
            "name": name,
            "workspace": workspace,
            "description": fields.get("description") or "",
            "purpose": fields.get("purpose") or "model",
            "storage": {"type": "local", "path": f"filesets/{workspace}/{name}"},
            "metadata": fields.get("metadata") or {},
            "custom_fields": fields.get("custom_fields") or {},
            "project": fields.get("project") or "",
            "created_at": now,
            "updated_at": now,
        }
        return state.store(FILESETS, ref, record)


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

    @api.post("", status_code=201)
    async def create_model(workspace: Workspace, body: CreateModelEntityRequest, request: Request) -> Any:
        if problem := _name_problem(state, "path.workspace", workspace):
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
        if not (1 <= page_size <= MAX_PAGE_SIZE and page >= 1):
            return _detail(500, "Failed to list model entities")
        records = [
            r
            for r in state.all(SERVICE)
            if r["workspace"] == filters.get("workspace", workspace) and _matches(r, filters)
        ]
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
        found = [
            job_view(state, j)
            for j in state.all(JOBS)
            if j["workspace"] == workspace and source in (None, j["source"]) and name in (None, j["name"])
        ]
        found = [j for j in found if status in (None, j["status"])]
        field = sort.lstrip("-")
        found.sort(key=lambda j: (j[field], j["created_at"]), reverse=sort.startswith("-"))
        chunk, pagination = _paged(found, page, page_size)
        pagination["total_pages"] = max(1, pagination["total_pages"])  # the jobs API says 1 page when empty
        # response_model_exclude_none, as the models list
        data = [{k: v for k, v in j.items() if v is not None} for j in chunk]
        return {"data": data, "pagination": pagination, "sort": sort}

    @jobs.get("/{name}")
    async def get_job(workspace: Workspace, name: str) -> Any:
        job = state.get(JOBS, name)
        if job is None or job["workspace"] != workspace:
            return _detail(404, f"Job '{name}' not found in workspace '{workspace}'")
        return job_view(state, job)

    @jobs.post("/{name}/cancel")
    async def cancel_job(workspace: Workspace, name: str) -> Any:
        """As nemo-helix 0.8.1's jobs API: 404 for an unknown job, 409 once it is terminal, else the job
        ``cancelled`` for good (a cancelled spec analysis leaves its entity's spec as it was)."""
        job = state.get(JOBS, name)
        if job is None or job["workspace"] != workspace:
            return _detail(404, f"Job '{name}' not found in workspace '{workspace}'.")
        if job_status(state, job) != "active":
            return _detail(
                409, f"Cannot cancel job '{name}' from its current state. Refresh the job status and try again."
            )
        with state.lock:
            job["_ended"] = "cancelled"
        return job_view(state, job)

    files = APIRouter(prefix=FILES_PREFIX, dependencies=[Depends(authorised)])

    @files.post("", status_code=200)  # the Files API answers a create 200, not 201
    async def create_fileset(workspace: Workspace, body: CreateFilesetRequest) -> Any:
        record = add_fileset(state, f"{workspace}/{body.name}", **body.model_dump(exclude={"name"}))
        if record is None:
            return _detail(409, f"Fileset '{workspace}/{body.name}' already exists")
        return public(record)

    @files.get("/{name}")
    async def get_fileset(workspace: Workspace, name: str) -> Any:
        record = state.get(FILESETS, _key(workspace, name))
        if record is None:
            return _detail(404, f"Fileset '{workspace}/{name}' not found")
        return public(record)

    both = APIRouter()
    for part in (api, jobs, files):
        both.include_router(part)
    return both
