"""NVIDIA NeMo Platform Models API v2 at its real paths: ``/apis/models/v2/workspaces/{workspace}/models``.

Bodies are validated by pydantic models shaped like the platform's own, so a bad body gets FastAPI's genuine
422 (``{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}``). Other errors are ``{"detail": str}``.
``spec`` is filled ``state.seconds("nemo")`` after creation when a fileset is given (computed on read); an
outcome rule matching the name makes the spec analysis fail, so ``spec`` stays null for ever.
Auth is off unless ``state.nemo_tokens`` holds accepted Bearer tokens. Every write request's raw
body is kept in ``state.extra["nemo_requests"]`` so tests can check exactly what was sent.
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
from pydantic import AnyUrl, BaseModel, ConfigDict, Field

from airflow_provider_modelreg.sandbox.state import SandboxState, phase, public

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


class CreateModelEntityRequest(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")  # the rule has look-arounds

    name: str = Field(pattern=NAME_PATTERN)
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _detail(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _name_problem(state: SandboxState, where: str, value: str) -> JSONResponse | None:
    """FastAPI's 422 for a name outside the platform's rule (today's, or 0.3.0's when so configured)."""
    legacy = state.extra.get("nemo_name_rule") == "0.3"
    if (LEGACY_NAME if legacy else re.compile(NAME_PATTERN)).match(value):
        return None
    item = {
        "loc": where.split("."),
        "msg": f"String should match pattern '{NAME_PATTERN}'",
        "type": "string_pattern_mismatch",
    }
    return JSONResponse({"detail": [item]}, status_code=422)


def _fileset_problem(state: SandboxState, fileset: str | None) -> JSONResponse | None:
    if fileset is None:
        return None
    legacy = state.extra.get("nemo_name_rule") == "0.3"
    if not (LEGACY_FILESET if legacy else FILESET).match(fileset):
        return _detail(400, f"Invalid fileset '{fileset}': expected format {{workspace}}/{{fileset_name}}")
    return None


def _key(workspace: str, name: str) -> str:
    return f"{workspace}/{name}"


def _generated_spec(record: dict[str, Any]) -> dict[str, Any]:
    """What the platform's spec analysis derives from a checkpoint (a Llama-3.1-8B-shaped one here)."""
    return {
        "checkpoint_model_name": record["fileset"].rsplit("/", 1)[-1],
        "family": "llama",
        "context_size": 131072,
        "is_chat": True,
        "is_embedding_model": False,
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
        # The platform answers these null (nemo-helix 0.8.1's spec analysis does not fill them).
        "minimum_gpus_all_weights": None,
        "minimum_gpus_lora": None,
    }


def view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    view = public(record)
    if view.get("spec") is None and record.get("fileset") and not record.get("_failure"):
        # The spec-analysis job runs from the moment the fileset was set; its result appears when it ends.
        clock = {"_created": record.get("_fileset_at", record["_created"])}
        if phase(clock, state.seconds(SERVICE), [("analysing", 1.0)], "done") == "done":
            view["spec"] = _generated_spec(record)
    return view


JOBS_PREFIX = "/apis/jobs/v2/workspaces/{workspace}/jobs"


def _start_spec_job(state: SandboxState, record: dict[str, Any]) -> None:
    """The platform's spec-analysis job for an entity's fileset (source models-system), on the jobs API."""
    job_name = f"job-{state.new_hex_id(16)}"
    job = {
        "name": job_name,
        "workspace": record["workspace"],
        "source": "models-system",
        "description": f"Model Spec Analyzer for model {record['workspace']}/{record['name']}",
        "created_at": _now(),
        "_started": time.time(),
        "_failure": record.get("_failure"),
    }
    state.store("nemo_jobs", job_name, job)


def job_view(state: SandboxState, job: dict[str, Any]) -> dict[str, Any]:
    """``active`` while it runs (as long as the spec takes to appear), then ``completed`` or ``error``."""
    done = time.time() - job["_started"] >= state.seconds(SERVICE)
    view = public(job) | {"status": ("error" if job["_failure"] else "completed") if done else "active"}
    if view["status"] == "error":
        view["error_details"] = {"message": job["_failure"]}
    return view


def _is_admin(state: SandboxState, request: Request) -> bool:
    """With auth off everyone acts as admin; with auth on, only ``state.extra["nemo_admin_tokens"]``."""
    if not state.nemo_tokens:
        return True
    token = request.headers.get("authorization", "").partition(" ")[2]
    return token in state.extra.get("nemo_admin_tokens", set())


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
        if problem := _fileset_problem(state, body.fileset):
            return problem
        if body.trust_remote_code and not _is_admin(state, request):
            return _detail(403, "trust_remote_code requires admin privileges or a pre-approved fileset source")
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
                "_failure": state.failure_for(SERVICE, body.name),
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
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,  # the platform's default
        sort: SortField = "created_at",
        name: Annotated[str | None, Query(alias="filter[name]")] = None,
        project: Annotated[str | None, Query(alias="filter[project]")] = None,
    ) -> Any:
        state.bump(f"{SERVICE}.list_pages")
        records = [
            r
            for r in state.all(SERVICE)
            if r["workspace"] == workspace
            and (name is None or r["name"] == name)
            and (project is None or r.get("project") == project)
        ]
        field, reverse = sort.lstrip("-"), sort.startswith("-")
        records.sort(key=lambda r: (r.get(field) or "", r["_created"]), reverse=reverse)
        total = len(records)
        chunk = records[(page - 1) * page_size : page * page_size]
        return {
            "data": [view(state, r) for r in chunk],
            "pagination": {
                "page": page,
                "page_size": page_size,
                "current_page_size": len(chunk),
                "total_pages": math.ceil(total / page_size),
                "total_results": total,
            },
        }

    @api.patch("/{name}")
    async def update_model(workspace: Workspace, name: str, body: UpdateModelEntityRequest) -> Any:
        if problem := _fileset_problem(state, body.fileset):
            return problem
        with state.lock:
            record = state.get(SERVICE, _key(workspace, name))
            if record is None:
                return _detail(404, f"Model with workspace '{workspace}' and name '{name}' not found")
            changes = body.model_dump(mode="json", exclude_unset=True)
            new_fileset = changes.get("fileset") and changes["fileset"] != record.get("fileset")
            if new_fileset:
                record["_fileset_at"] = time.time()  # a new checkpoint: a new spec analysis starts
            record.update(changes)
            if new_fileset:
                _start_spec_job(state, record)
            record["updated_at"] = _now()
        return view(state, record)

    jobs = APIRouter(prefix=JOBS_PREFIX, dependencies=[Depends(authorised)])

    @jobs.get("")
    async def list_jobs(
        workspace: Workspace,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 10,
        sort: Literal["created_at", "-created_at"] = "-created_at",
        source: Annotated[str | None, Query(alias="filter[source]")] = None,
    ) -> Any:
        found = [
            job_view(state, j)
            for j in state.all("nemo_jobs")
            if j["workspace"] == workspace and (source is None or j["source"] == source)
        ]
        found.sort(key=lambda j: j["created_at"], reverse=sort.startswith("-"))
        chunk = found[(page - 1) * page_size : page * page_size]
        pages = max(1, math.ceil(len(found) / page_size))
        pagination = {"page": page, "page_size": page_size, "current_page_size": len(chunk)}
        return {"data": chunk, "pagination": pagination | {"total_pages": pages, "total_results": len(found)}}

    @api.delete("/{name}", status_code=204, response_model=None, response_class=Response)
    async def delete_model(workspace: Workspace, name: str) -> Response:
        with state.lock:
            if state.resources.get(SERVICE, {}).pop(_key(workspace, name), None) is None:
                return _detail(404, f"Model with workspace '{workspace}' and name '{name}' not found")
        return Response(status_code=204)

    both = APIRouter()
    both.include_router(api)
    both.include_router(jobs)
    return both
