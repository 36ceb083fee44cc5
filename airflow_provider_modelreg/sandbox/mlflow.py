"""OCI AI Data Platform's MLflow-compatible MLOps API at its real paths (preview version 20260430).

Tracking (experiments, runs) is workspace-scoped, the registry (registered models, model versions) is
platform-scoped, with an extra workspace-scoped ``model-versions/create``. Every request must carry a
valid OCI signature; creates honour ``opc-retry-token``; answers carry ``opc-request-id`` and ``etag``.

Errors are OCI-shaped ``{code, message}``. The AI Data Platform's own codes for MLflow errors are not
documented, so the sandbox uses OCI's conventional ones, which the hook must understand besides MLflow's:
400 ``InvalidParameter``, 404 ``NotAuthorizedOrNotFound``, 409 ``Conflict`` for a duplicate name.

A model version stays PENDING_REGISTRATION for ``state.seconds("mlflow")`` seconds, then becomes READY,
or FAILED_REGISTRATION with a ``status_message`` when an outcome rule for "mlflow" matches its name.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_modelreg.sandbox.oci_common import check_signature, oci_error, oci_json, with_retry_token
from airflow_provider_modelreg.sandbox.state import SandboxState, phase, public

SERVICE = "mlflow"
EXPERIMENTS = "mlflow.experiments"
RUNS = "mlflow.runs"
REGISTERED_MODELS = "mlflow.registered_models"
MODEL_VERSIONS = "mlflow.model_versions"

PLATFORM = "/20260430/aiDataPlatforms/{platform_id}/mlops/api/2.0/mlflow"
WORKSPACE = "/20260430/aiDataPlatforms/{platform_id}/workspaces/{workspace_key}/mlops/api/2.0/mlflow"

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED", "INTERNAL_ERROR")
# MLflow's rule for metric, param and tag names.
NAME_RULE = re.compile(r"^[/\w.\- :]*$")
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ITEMS, MAX_PARAM_VALUE = 1000, 100, 100, 1000, 6000
DEFAULT_PAGE = 1000


class Invalid(Exception):
    """A request the service refuses: becomes 400 InvalidParameter."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _etag(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _answer(data: Any, request: Request) -> JSONResponse:
    return oci_json(data, request, headers={"etag": _etag(data)})


def _next_id(state: SandboxState) -> str:
    with state.lock:
        counter = state.extra.setdefault("mlflow_ids", itertools.count(1))
        return str(next(counter))


def _string(body: dict[str, Any], name: str, *, required: bool = False, low: int = 0, high: int | None = None) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(f"Missing value for required parameter '{name}'")
        return None
    if not isinstance(value, str):
        raise Invalid(f"'{name}' must be a string")
    if len(value) < low or (high is not None and len(value) > high):
        raise Invalid(f"'{name}' must be {low}..{high} characters long")
    return value


def _tags(body: dict[str, Any], *, most: int | None = None) -> list[dict[str, str]]:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise Invalid("'tags' must be an array of {key, value}")
    if most is not None and len(tags) > most:
        raise Invalid(f"at most {most} tags are allowed")
    for tag in tags:
        key = tag.get("key")
        if not isinstance(key, str) or not 1 <= len(key) <= 250 or not NAME_RULE.match(key):
            raise Invalid(f"invalid tag key {key!r}")
        if not isinstance(tag.get("value", ""), str) or len(tag.get("value", "")) > 8000:
            raise Invalid(f"tag {key!r}: the value must be a string of at most 8000 characters")
    return [{"key": t["key"], "value": t.get("value", "")} for t in tags]


# -- a small subset of MLflow's filter grammar: clauses "<field> = '<value>'" joined by AND -------------
_CLAUSE = re.compile(
    r"""^\s*(?P<field>[\w.]+|[\w]+\.`[^`]+`|[\w]+\."[^"]+")\s*=\s*(?P<q>['"])(?P<value>.*)(?P=q)\s*$"""
)


def _parse_filter(text: str | None, allowed: set[str]) -> list[tuple[str, str]]:
    if not text or not text.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(part)
        if not m:
            raise Invalid(f"Invalid clause(s) in filter string: {part!r}")
        field = m["field"].replace("`", "").replace('"', "")
        field = field.removeprefix("attributes.").removeprefix("attribute.")
        kind = "tags" if field.startswith(("tags.", "tag.")) else field
        if kind not in allowed:
            raise Invalid(f"Invalid attribute key '{field}' in filter string")
        clauses.append((field, m["value"]))
    return clauses


def _page(items: list[Any], max_results: Any, page_token: Any) -> tuple[list[Any], str | None]:
    try:
        size = int(max_results) if max_results not in (None, "") else DEFAULT_PAGE
        start = int(page_token) if page_token not in (None, "") else 0
    except ValueError:
        raise Invalid("max_results and page_token must be integers") from None
    if size < 1 or size > 50000:
        raise Invalid("max_results must be between 1 and 50000")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


# -- views ------------------------------------------------------------------------------------------
def _run_view(record: dict[str, Any]) -> dict[str, Any]:
    latest: dict[str, dict[str, Any]] = {}
    for metric in record["_metrics"]:
        current = latest.get(metric["key"])
        if current is None or (metric["step"], metric["timestamp"]) >= (current["step"], current["timestamp"]):
            latest[metric["key"]] = metric
    return {
        "info": public(record),
        "data": {
            "metrics": list(latest.values()),
            "params": [{"key": k, "value": v} for k, v in record["_params"].items()],
            "tags": [{"key": k, "value": v} for k, v in record["_tags"].items()],
        },
        "inputs": {},
        "outputs": {},
    }


def _version_view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    failure = record.get("_failure")
    status = phase(
        record, state.seconds(SERVICE), [("PENDING_REGISTRATION", 1.0)], "FAILED_REGISTRATION" if failure else "READY"
    )
    view = public(record) | {"status": status}
    if status == "FAILED_REGISTRATION":
        view["status_message"] = failure
    elif status == "PENDING_REGISTRATION":
        view["status_message"] = "Registration in progress"
    return view


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()

    async def guarded(request: Request) -> tuple[dict[str, Any], JSONResponse | None]:
        """The JSON body of a signed request, or an OCI error to answer with."""
        raw, denied = await check_signature(request, state)
        if denied is not None:
            return {}, denied
        if request.method == "GET" or not raw:
            return {}, None
        try:
            body = json.loads(raw)
        except ValueError:
            return {}, oci_error(400, "InvalidParameter", "The request body is not valid JSON", request)
        if not isinstance(body, dict):
            return {}, oci_error(400, "InvalidParameter", "The request body must be a JSON object", request)
        return body, None

    def not_found(request: Request, what: str) -> JSONResponse:
        return oci_error(404, "NotAuthorizedOrNotFound", f"{what} not found or not authorized", request)

    def invalid(request: Request, exc: Invalid) -> JSONResponse:
        return oci_error(400, "InvalidParameter", str(exc), request)

    def principal(request: Request) -> str:
        return request.headers.get("dh-user-principal", "")

    def find_experiment(platform_id: str, workspace_key: str, *, name: str | None = None, eid: str | None = None):
        for record in state.all(EXPERIMENTS):
            if (record["_platform"], record["_workspace"]) != (platform_id, workspace_key):
                continue
            if (name is not None and record["name"] == name) or (eid is not None and record["experiment_id"] == eid):
                return record
        return None

    def find_run(platform_id: str, workspace_key: str, run_id: Any) -> dict[str, Any] | None:
        record = state.get(RUNS, str(run_id)) if isinstance(run_id, str) else None
        if record is None or (record["_platform"], record["_workspace"]) != (platform_id, workspace_key):
            return None
        return record

    # -- experiments ----------------------------------------------------------------------------
    @api.post(WORKSPACE + "/experiments/create")
    async def create_experiment(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        try:
            name = _string(body, "name", required=True, low=1, high=500)
            tags = _tags(body)
        except Invalid as exc:
            return invalid(request, exc)

        async def create() -> JSONResponse:
            with state.lock:
                if find_experiment(platform_id, workspace_key, name=name):
                    return oci_error(409, "Conflict", f"Experiment(name={name}) already exists.", request)
                experiment_id = _next_id(state)
                now = _now_ms()
                state.store(
                    EXPERIMENTS,
                    f"{platform_id}/{workspace_key}/{experiment_id}",
                    {
                        "experiment_id": experiment_id,
                        "name": name,
                        "artifact_location": body.get("artifact_location") or f"oci://mlflow/{experiment_id}",
                        "lifecycle_stage": "active",
                        "creation_time": now,
                        "last_update_time": now,
                        "tags": tags,
                        "_platform": platform_id,
                        "_workspace": workspace_key,
                    },
                )
            return _answer({"experiment_id": experiment_id}, request)

        return await with_retry_token(request, state, SERVICE, await request.body(), create)

    @api.get(WORKSPACE + "/experiments/get-by-name")
    async def get_experiment_by_name(
        platform_id: str, workspace_key: str, request: Request, experiment_name: str = ""
    ) -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        record = find_experiment(platform_id, workspace_key, name=experiment_name)
        if record is None:
            return not_found(request, f"Experiment with name '{experiment_name}'")
        return _answer({"experiment": public(record)}, request)

    @api.api_route(WORKSPACE + "/experiments/search", methods=["GET", "POST"])
    async def search_experiments(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        args = body or dict(request.query_params)
        experiments = [
            public(r)
            for r in state.all(EXPERIMENTS)
            if (r["_platform"], r["_workspace"]) == (platform_id, workspace_key)
        ]
        try:
            page, token = _page(experiments, args.get("max_results"), args.get("page_token"))
        except Invalid as exc:
            return invalid(request, exc)
        return _answer({"experiments": page} | ({"next_page_token": token} if token else {}), request)

    # -- runs -----------------------------------------------------------------------------------------
    @api.post(WORKSPACE + "/runs/create")
    async def create_run(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        try:
            experiment_id = _string(body, "experiment_id", required=True, low=1)
            run_name = _string(body, "run_name", high=250)
            tags = _tags(body)
            start_time = body.get("start_time")
            if start_time is not None and (not isinstance(start_time, int) or start_time < 0):
                raise Invalid("'start_time' must be a non-negative integer (milliseconds)")
        except Invalid as exc:
            return invalid(request, exc)
        if find_experiment(platform_id, workspace_key, eid=experiment_id) is None:
            return not_found(request, f"Experiment with id={experiment_id}")

        async def create() -> JSONResponse:
            run_id = state.new_hex_id(32)
            tag_map = {t["key"]: t["value"] for t in tags}
            name = run_name or tag_map.get("mlflow.runName") or f"run-{run_id[:8]}"
            tag_map["mlflow.runName"] = name
            record = state.store(
                RUNS,
                run_id,
                {
                    "run_id": run_id,
                    "run_uuid": run_id,
                    "run_name": name,
                    "experiment_id": experiment_id,
                    "user_id": principal(request),
                    "status": "RUNNING",
                    "start_time": start_time if start_time is not None else 0,
                    "artifact_uri": f"oci://mlflow/{experiment_id}/{run_id}/artifacts",
                    "lifecycle_stage": "active",
                    "_platform": platform_id,
                    "_workspace": workspace_key,
                    "_params": {},
                    "_metrics": [],
                    "_tags": tag_map,
                },
            )
            return _answer({"run": _run_view(record)}, request)

        return await with_retry_token(request, state, SERVICE, await request.body(), create)

    @api.get(WORKSPACE + "/runs/get")
    async def get_run(platform_id: str, workspace_key: str, request: Request, run_id: str = "") -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        record = find_run(platform_id, workspace_key, run_id)
        if record is None:
            return not_found(request, f"Run with id={run_id}")
        return _answer({"run": _run_view(record)}, request)

    @api.post(WORKSPACE + "/runs/update")
    async def update_run(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        record = find_run(platform_id, workspace_key, body.get("run_id") or body.get("run_uuid"))
        if record is None:
            return not_found(request, f"Run with id={body.get('run_id')}")
        status = body.get("status")
        if status is not None and status not in RUN_STATUSES:
            return invalid(request, Invalid(f"'status' must be one of {', '.join(RUN_STATUSES)}"))
        end_time = body.get("end_time")
        if end_time is not None and (not isinstance(end_time, int) or end_time < 0):
            return invalid(request, Invalid("'end_time' must be a non-negative integer (milliseconds)"))
        with state.lock:
            if status is not None:
                record["status"] = status
            if end_time is not None:
                record["end_time"] = end_time
            if isinstance(body.get("run_name"), str) and body["run_name"]:
                record["run_name"] = record["_tags"]["mlflow.runName"] = body["run_name"]
        return _answer({"run_info": public(record)}, request)

    @api.post(WORKSPACE + "/runs/log-batch")
    async def log_batch(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        record = find_run(platform_id, workspace_key, body.get("run_id"))
        if record is None:
            return not_found(request, f"Run with id={body.get('run_id')}")
        metrics, params = body.get("metrics") or [], body.get("params") or []
        try:
            tags = _tags(body)
            if not isinstance(metrics, list) or not isinstance(params, list):
                raise Invalid("'metrics' and 'params' must be arrays")
            if len(metrics) > MAX_METRICS or len(params) > MAX_PARAMS or len(tags) > MAX_TAGS:
                raise Invalid(
                    f"A batch logging request can contain at most {MAX_METRICS} metrics, {MAX_PARAMS} params "
                    f"and {MAX_TAGS} tags; got {len(metrics)}, {len(params)} and {len(tags)}"
                )
            if len(metrics) + len(params) + len(tags) > MAX_ITEMS:
                raise Invalid(f"A batch logging request can contain at most {MAX_ITEMS} items")
            for item in [*metrics, *params]:
                key = item.get("key") if isinstance(item, dict) else None
                if not isinstance(key, str) or not 1 <= len(key) <= 250 or not NAME_RULE.match(key):
                    raise Invalid(
                        f"Invalid value \"{key}\" for parameter 'name' supplied: Names may only contain "
                        "alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
                    )
            for metric in metrics:
                value = metric.get("value")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise Invalid(f"metric {metric['key']!r}: 'value' must be a number")
                for name in ("timestamp", "step"):
                    if not isinstance(metric.get(name, 0), int):
                        raise Invalid(f"metric {metric['key']!r}: '{name}' must be an integer")
            for param in params:
                value = param.get("value")
                if not isinstance(value, str) or len(value) > MAX_PARAM_VALUE:
                    raise Invalid(f"param {param['key']!r}: the value must be a string of at most {MAX_PARAM_VALUE}")
                old = record["_params"].get(param["key"])
                if old is not None and old != value:
                    raise Invalid(
                        f"Changing param values is not allowed. Param with key='{param['key']}' was already "
                        f"logged with value='{old}' for run ID='{record['run_id']}'. Attempted logging new "
                        f"value '{value}'."
                    )
        except Invalid as exc:
            return invalid(request, exc)
        with state.lock:
            seen = {(m["key"], m["value"], m["timestamp"], m["step"]) for m in record["_metrics"]}
            for metric in metrics:
                point = {
                    "key": metric["key"],
                    "value": float(metric["value"]),
                    "timestamp": metric.get("timestamp", 0),
                    "step": metric.get("step", 0),
                }
                if (point["key"], point["value"], point["timestamp"], point["step"]) not in seen:
                    record["_metrics"].append(point)
            record["_params"].update({p["key"]: p["value"] for p in params})
            record["_tags"].update({t["key"]: t["value"] for t in tags})
            state.bump("mlflow.log_batch_calls")
        return _answer({}, request)

    @api.post(WORKSPACE + "/runs/search")
    async def search_runs(platform_id: str, workspace_key: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        try:
            ids = body.get("experiment_ids") or []
            if not isinstance(ids, list) or not ids:
                raise Invalid("'experiment_ids' must be a non-empty array")
            clauses = _parse_filter(body.get("filter"), {"tags", "run_name", "status", "run_id"})
            order = (body.get("order_by") or ["attributes.start_time DESC"])[0]
            ascending = str(order).upper().endswith(" ASC")
        except Invalid as exc:
            return invalid(request, exc)
        runs = []
        for record in state.all(RUNS):
            if (record["_platform"], record["_workspace"]) != (platform_id, workspace_key):
                continue
            if record["experiment_id"] not in ids or record["lifecycle_stage"] != "active":
                continue
            if all(
                (record["_tags"].get(f.split(".", 1)[1]) if f.startswith(("tags.", "tag.")) else record.get(f)) == v
                for f, v in clauses
            ):
                runs.append(record)
        runs.sort(key=lambda r: (r["start_time"], r["_created"]), reverse=not ascending)
        try:
            page, token = _page(runs, body.get("max_results"), body.get("page_token"))
        except Invalid as exc:
            return invalid(request, exc)
        return _answer({"runs": [_run_view(r) for r in page]} | ({"next_page_token": token} if token else {}), request)

    # -- registered models ----------------------------------------------------------------------------
    @api.post(PLATFORM + "/registered-models/create")
    async def create_registered_model(platform_id: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        try:
            name = _string(body, "name", required=True, low=1, high=255)
            description = _string(body, "description", high=5000)
            tags = _tags(body, most=20)
        except Invalid as exc:
            return invalid(request, exc)

        async def create() -> JSONResponse:
            with state.lock:
                if state.get(REGISTERED_MODELS, f"{platform_id}/{name}") is not None:
                    return oci_error(409, "Conflict", f"Registered Model (name={name}) already exists.", request)
                now = _now_ms()
                record = state.store(
                    REGISTERED_MODELS,
                    f"{platform_id}/{name}",
                    {
                        "name": name,
                        "creation_timestamp": now,
                        "last_updated_timestamp": now,
                        "description": description or "",
                        "tags": tags,
                        "user_id": principal(request),
                        "_platform": platform_id,
                    },
                )
            return _answer({"registered_model": public(record)}, request)

        return await with_retry_token(request, state, SERVICE, await request.body(), create)

    @api.get(PLATFORM + "/registered-models/get")
    async def get_registered_model(platform_id: str, request: Request, name: str = "") -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        record = state.get(REGISTERED_MODELS, f"{platform_id}/{name}")
        if record is None:
            return not_found(request, f"Registered Model with name={name}")
        return _answer({"registered_model": public(record)}, request)

    @api.get(PLATFORM + "/registered-models/search")
    async def search_registered_models(platform_id: str, request: Request) -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        args = request.query_params
        try:
            clauses = _parse_filter(args.get("filter"), {"name"})
            models = [
                public(r)
                for r in state.all(REGISTERED_MODELS)
                if r["_platform"] == platform_id and all(r.get(f) == v for f, v in clauses)
            ]
            page, token = _page(models, args.get("max_results"), args.get("page_token"))
        except Invalid as exc:
            return invalid(request, exc)
        return _answer({"registered_models": page} | ({"next_page_token": token} if token else {}), request)

    # -- model versions -------------------------------------------------------------------------------
    async def create_model_version(platform_id: str, request: Request) -> Any:
        body, denied = await guarded(request)
        if denied:
            return denied
        try:
            name = _string(body, "name", required=True, low=1, high=255)
            source = _string(body, "source", required=True, low=1, high=500)
            run_id = _string(body, "run_id", low=1, high=32)
            model_id = _string(body, "model_id", high=36)
            run_link = _string(body, "run_link", high=500)
            description = _string(body, "description", high=5000)
            tags = _tags(body, most=20)
        except Invalid as exc:
            return invalid(request, exc)
        if state.get(REGISTERED_MODELS, f"{platform_id}/{name}") is None:
            return not_found(request, f"Registered Model with name={name}")

        async def create() -> JSONResponse:
            with state.lock:
                versions = [r for r in state.all(MODEL_VERSIONS) if (r["_platform"], r["name"]) == (platform_id, name)]
                version = str(len(versions) + 1)
                now = _now_ms()
                record = state.store(
                    MODEL_VERSIONS,
                    f"{platform_id}/{name}/{version}",
                    {
                        "name": name,
                        "version": version,
                        "creation_timestamp": now,
                        "last_updated_timestamp": now,
                        "current_stage": "None",
                        "description": description or "",
                        "source": source,
                        "run_id": run_id or "",
                        "run_link": run_link or "",
                        "model_id": model_id or "",
                        "tags": tags,
                        "user_id": principal(request),
                        "aliases": [],
                        "_platform": platform_id,
                        "_failure": state.failure_for(SERVICE, name),
                    },
                )
            return _answer({"model_version": _version_view(state, record)}, request)

        return await with_retry_token(request, state, SERVICE, await request.body(), create)

    @api.post(PLATFORM + "/model-versions/create")
    async def create_model_version_platform(platform_id: str, request: Request) -> Any:
        return await create_model_version(platform_id, request)

    @api.post(WORKSPACE + "/model-versions/create")
    async def create_model_version_workspace(platform_id: str, workspace_key: str, request: Request) -> Any:
        return await create_model_version(platform_id, request)

    @api.get(PLATFORM + "/model-versions/get")
    async def get_model_version(platform_id: str, request: Request, name: str = "", version: str = "") -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        record = state.get(MODEL_VERSIONS, f"{platform_id}/{name}/{version}")
        if record is None:
            return not_found(request, f"Model Version (name={name}, version={version})")
        return _answer({"model_version": _version_view(state, record)}, request)

    @api.get(PLATFORM + "/model-versions/search")
    async def search_model_versions(platform_id: str, request: Request) -> Any:
        _body, denied = await guarded(request)
        if denied:
            return denied
        args = request.query_params
        try:
            clauses = _parse_filter(args.get("filter"), {"name", "run_id", "tags"})
            versions = []
            for record in state.all(MODEL_VERSIONS):
                if record["_platform"] != platform_id:
                    continue
                tags = {t["key"]: t["value"] for t in record["tags"]}
                if all(
                    (tags.get(f.split(".", 1)[1]) if f.startswith(("tags.", "tag.")) else record.get(f)) == v
                    for f, v in clauses
                ):
                    versions.append(_version_view(state, record))
            page, token = _page(versions, args.get("max_results"), args.get("page_token"))
        except Invalid as exc:
            return invalid(request, exc)
        return _answer({"model_versions": page} | ({"next_page_token": token} if token else {}), request)

    return api
