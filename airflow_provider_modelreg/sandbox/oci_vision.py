"""OCI AI Vision at its real paths (``/20220125``): models, work requests and projects, OCI-signed.

Every route checks the request's OCI signature against ``state.oci_public_keys`` (401 in OCI's shape).
``POST /models`` honours ``opc-retry-token``. Models are CREATING for ``state.seconds("oci_vision")``
seconds, then ACTIVE with training metrics, or FAILED when ``state.failure_for("oci_vision", displayName)``
matches (reason in ``lifecycleDetails`` and in the work request's errors). Setting
``state.extra[NOT_FOUND_SECONDS]`` makes a new model answer 404 for that long (eventual consistency).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_modelreg.sandbox.oci_common import check_signature, oci_error, oci_json, with_retry_token
from airflow_provider_modelreg.sandbox.state import SandboxState, phase, public

SERVICE = "oci_vision"
PREFIX = "/20220125"
# state.extra key: seconds during which a just-created model answers 404 (off by default).
NOT_FOUND_SECONDS = "oci_vision.not_found_seconds"
_WORK_REQUESTS = "oci_vision.work_requests"  # state.extra key: work request id -> model id
# state.extra key: work request id -> {"model", "operation", "at"} for update_model and delete_model,
# which the sandbox applies at once (their work requests are SUCCEEDED when first read).
_OPERATIONS = "oci_vision.operations"
# The oci SDK's list_models / list_work_requests: sortBy values and each one's default order.
MODEL_SORTS = {"timeCreated": "DESC", "displayName": "ASC"}
WORK_REQUEST_SORTS = {"timeAccepted": "DESC"}

MODEL_TYPES = ("IMAGE_CLASSIFICATION", "OBJECT_DETECTION")
DATASET_FIELDS = {
    "DATA_SCIENCE_LABELING": ("datasetId",),
    "OBJECT_STORAGE": ("namespaceName", "bucketName", "objectName"),
}
SANDBOX_PROJECT = "ocid1.aivisionproject.oc1.iad.amaaaaaasandboxproject"
NOT_FOUND_MESSAGE = "Authorization failed or requested resource not found."
_UPDATABLE = ("displayName", "description", "freeformTags", "definedTags")
WORK_REQUEST_SUMMARY_FIELDS = (
    "id",
    "operationType",
    "status",
    "compartmentId",
    "resources",
    "percentComplete",
    "timeAccepted",
    "timeStarted",
    "timeFinished",
)
SUMMARY_FIELDS = (
    "id",
    "displayName",
    "description",
    "compartmentId",
    "modelType",
    "modelVersion",
    "projectId",
    "timeCreated",
    "timeUpdated",
    "lifecycleState",
    "lifecycleDetails",
    "precision",
    "trainingDataset",
    "testingDataset",
    "validationDataset",
    "freeformTags",
    "definedTags",
    "systemTags",
)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- validation ------------------------------------------------------------------------------------
def _dataset_problems(name: str, value: Any, required: bool) -> list[str]:
    if value is None:
        return [f"{name} is required"] if required else []
    if not isinstance(value, dict):
        return [f"{name} must be an object"]
    kind = value.get("datasetType")
    if kind not in DATASET_FIELDS:
        return [f"{name}.datasetType must be one of {', '.join(DATASET_FIELDS)}"]
    return [
        f"{name}.{field} is required for datasetType {kind}"
        for field in DATASET_FIELDS[kind]
        if not isinstance(value.get(field), str) or not value.get(field)
    ]


def _validate(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [
        f"{name} is required and must be a non-empty string"
        for name in ("compartmentId", "projectId")
        if not isinstance(body.get(name), str) or not body.get(name)
    ]
    if body.get("modelType") not in MODEL_TYPES:
        problems.append(f"modelType must be one of {', '.join(MODEL_TYPES)}")
    problems += _dataset_problems("trainingDataset", body.get("trainingDataset"), required=True)
    problems += _dataset_problems("testingDataset", body.get("testingDataset"), required=False)
    problems += _dataset_problems("validationDataset", body.get("validationDataset"), required=False)
    hours = body.get("maxTrainingDurationInHours")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0):
        problems.append("maxTrainingDurationInHours must be a positive number")
    for name in ("displayName", "description", "modelVersion"):
        if name in body and not isinstance(body[name], str):
            problems.append(f"{name} must be a string")
    if "isQuickMode" in body and not isinstance(body["isQuickMode"], bool):
        problems.append("isQuickMode must be a boolean")
    return problems


# -- views -----------------------------------------------------------------------------------------
def _training_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """Plausible, deterministic metrics: the same request trains to the same numbers."""
    rng = random.Random(int(record["_digest"][:12], 16))
    total = rng.randint(240, 2400)
    test = max(1, round(total * 0.2))
    precision = round(rng.uniform(0.82, 0.97), 4)
    recall = round(rng.uniform(0.78, 0.95), 4)
    average_precision = round(min(precision, recall) - rng.uniform(0.0, 0.03), 4)
    labels = ["defect", "scratch", "ok"] if record["modelType"] == "OBJECT_DETECTION" else ["cat", "dog", "other"]
    per_label = [
        {
            "label": label,
            "precision": round(min(1.0, precision + rng.uniform(-0.05, 0.03)), 4),
            "recall": round(min(1.0, recall + rng.uniform(-0.05, 0.03)), 4),
            "testImageCount": test // len(labels),
        }
        for label in labels
    ]
    hours = 0.25 if record.get("isQuickMode") else round(rng.uniform(1.0, 6.0), 2)
    if record.get("maxTrainingDurationInHours"):
        hours = min(hours, float(record["maxTrainingDurationInHours"]))
    return {
        "precision": precision,
        "recall": recall,
        "averagePrecision": average_precision,
        # Object detection counts a box as found above this intersection over union.
        "confidenceThreshold": 0.5,
        "totalImageCount": total,
        "testImageCount": test,
        "trainedDurationInHours": hours,
        "metrics": json.dumps(
            {
                "modelType": record["modelType"],
                "precision": precision,
                "recall": recall,
                "averagePrecision": average_precision,
                "labelMetricsReport": per_label,
            },
            separators=(",", ":"),
        ),
    }


# A model whose training work request was cancelled (DELETE /workRequests/{id}): Oracle does not say what
# state the model takes then; the sandbox's choice is FAILED with this lifecycleDetails.
CANCELED_DETAILS = "Training was canceled: work request {work_request_id} CANCELED"


def _state_of(state: SandboxState, record: dict[str, Any]) -> str:
    if record.get("_canceled"):
        return "FAILED"
    return phase(record, state.seconds(SERVICE), [("CREATING", 1.0)], "FAILED" if record["_failure"] else "ACTIVE")


def view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    lifecycle = "DELETED" if record.get("_deleted") else _state_of(state, record)
    view = public(record) | {"lifecycleState": lifecycle}
    if lifecycle == "ACTIVE":
        view |= _training_metrics(record)
    if lifecycle in ("ACTIVE", "FAILED"):
        view["timeUpdated"] = _rfc3339(record["_created"] + state.seconds(SERVICE))
    if record.get("_changed"):
        view["timeUpdated"] = _rfc3339(record["_changed"])
    if lifecycle == "FAILED":
        view["lifecycleDetails"] = (
            CANCELED_DETAILS.format(work_request_id=record["_work_request_id"])
            if record.get("_canceled")
            else record["_failure"]
        )
    return view


def _etag(view: dict[str, Any]) -> str:
    return hashlib.sha256(f"{view['id']}:{view['lifecycleState']}:{view.get('timeUpdated')}".encode()).hexdigest()[:32]


def _operation_view(record: dict[str, Any], work_request_id: str, operation: dict[str, Any]) -> dict[str, Any]:
    at = _rfc3339(operation["at"])
    action = "DELETED" if operation["operation"] == "DELETE_MODEL" else "UPDATED"
    return {
        "id": work_request_id,
        "operationType": operation["operation"],
        "status": "SUCCEEDED",
        "compartmentId": record["compartmentId"],
        "resources": [
            {
                "entityType": "model",
                "actionType": action,
                "identifier": record["id"],
                "entityUri": f"{PREFIX}/models/{record['id']}",
            }
        ],
        "percentComplete": 100.0,
        "timeAccepted": at,
        "timeStarted": at,
        "timeFinished": at,
    }


def _sorted(
    views: list[dict[str, Any]], sorts: dict[str, str], sort_by: str | None, sort_order: str | None
) -> list[dict[str, Any]] | str:
    """``views`` in the order OCI gives for ``sortBy``/``sortOrder``, or the problem with either."""
    key = sort_by or next(iter(sorts))
    if key not in sorts:
        return f"sortBy must be one of {', '.join(sorts)}"
    order = sort_order or sorts[key]
    if order not in ("ASC", "DESC"):
        return "sortOrder must be one of ASC, DESC"
    return sorted(views, key=lambda v: (str(v.get(key) or ""), v["id"]), reverse=order == "DESC")


def _work_request_status(state: SandboxState, record: dict[str, Any]) -> tuple[str, float]:
    seconds = state.seconds(SERVICE)
    if canceled := record.get("_canceled"):
        elapsed = canceled - record["_created"]
        return "CANCELED", round(min(99.0, max(0.0, 100.0 * elapsed / seconds if seconds else 0.0)), 1)
    status = phase(
        record, seconds, [("ACCEPTED", 0.1), ("IN_PROGRESS", 0.9)], "FAILED" if record["_failure"] else "SUCCEEDED"
    )
    if status in ("SUCCEEDED", "FAILED"):
        return status, 100.0
    elapsed = time.time() - record["_created"]
    return status, round(min(99.0, max(0.0, 100.0 * elapsed / seconds if seconds else 0.0)), 1)


def _work_request_view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    status, percent = _work_request_status(state, record)
    seconds = state.seconds(SERVICE)
    view: dict[str, Any] = {
        "id": record["_work_request_id"],
        "operationType": "CREATE_MODEL",
        "status": status,
        "compartmentId": record["compartmentId"],
        "resources": [
            {
                "entityType": "model",
                "actionType": {"ACCEPTED": "IN_PROGRESS", "IN_PROGRESS": "IN_PROGRESS"}.get(status, "CREATED"),
                "identifier": record["id"],
                "entityUri": f"{PREFIX}/models/{record['id']}",
            }
        ],
        "percentComplete": percent,
        "timeAccepted": record["timeCreated"],
    }
    if status != "ACCEPTED":
        view["timeStarted"] = _rfc3339(record["_created"] + 0.1 * seconds)
    if status in ("SUCCEEDED", "FAILED"):
        view["timeFinished"] = _rfc3339(record["_created"] + seconds)
    if status == "CANCELED":
        view["timeFinished"] = _rfc3339(record["_canceled"])
    return view


def _work_request_errors(state: SandboxState, record: dict[str, Any]) -> list[dict[str, Any]]:
    if _work_request_status(state, record)[0] != "FAILED":
        return []
    return [
        {
            "code": "ModelTrainingFailed",
            "message": f"Training of model {record['id']} failed: {record['_failure']}",
            "timestamp": _rfc3339(record["_created"] + state.seconds(SERVICE)),
        }
    ]


def _work_request_logs(state: SandboxState, record: dict[str, Any]) -> list[dict[str, Any]]:
    status, _ = _work_request_status(state, record)
    seconds = state.seconds(SERVICE)
    logs = [{"message": "Create model request accepted", "timestamp": record["timeCreated"]}]
    if status != "ACCEPTED":
        logs.append({"message": "Model training started", "timestamp": _rfc3339(record["_created"] + 0.1 * seconds)})
    if status == "SUCCEEDED":
        logs.append({"message": "Model training completed", "timestamp": _rfc3339(record["_created"] + seconds)})
    elif status == "FAILED":
        logs.append({"message": "Model training failed", "timestamp": _rfc3339(record["_created"] + seconds)})
    elif status == "CANCELED":
        logs.append({"message": "Work request canceled", "timestamp": _rfc3339(record["_canceled"])})
    return logs


def _page(items: list[dict[str, Any]], request: Request, limit: int | None, page: str | None) -> JSONResponse:
    """One page of ``items``; the next page's token goes in ``opc-next-page``, as OCI does."""
    size = limit or 100
    if not 1 <= size <= 1000:
        return oci_error(400, "InvalidParameter", "limit must be between 1 and 1000", request)
    try:
        start = int(page) if page else 0
    except ValueError:
        return oci_error(400, "InvalidParameter", "page is not a valid page token", request)
    chunk = items[start : start + size]
    headers = {"opc-next-page": str(start + size)} if start + size < len(items) else {}
    return oci_json({"items": chunk}, request, headers=headers)


def router(state: SandboxState) -> APIRouter:
    api = APIRouter(prefix=PREFIX)

    def visible(record: dict[str, Any]) -> bool:
        hidden_for = float(state.extra.get(NOT_FOUND_SECONDS, 0.0) or 0.0)
        return time.time() - record["_created"] >= hidden_for

    def find_model(model_id: str) -> dict[str, Any] | None:
        record = state.get(SERVICE, model_id)
        return record if record is not None and visible(record) else None

    def find_work_request(work_request_id: str) -> dict[str, Any] | None:
        model_id = state.extra.get(_WORK_REQUESTS, {}).get(work_request_id)
        return state.get(SERVICE, model_id) if model_id else None

    def work_request_views() -> list[dict[str, Any]]:
        views = [_work_request_view(state, r) for r in state.all(SERVICE)]
        for work_request_id, operation in dict(state.extra.get(_OPERATIONS, {})).items():
            record = state.get(SERVICE, operation["model"])
            if record is not None:
                views.append(_operation_view(record, work_request_id, operation))
        return views

    async def change_model(model_id: str, request: Request, operation: str) -> tuple[dict[str, Any] | None, Any]:
        """The model an update or delete names, once signature, existence and ``if-match`` allow it."""
        record, answer = await signed_find(find_model, model_id, request)
        if record is None:
            return None, answer
        shown = view(state, record)
        if shown["lifecycleState"] == "DELETED":
            return None, oci_error(404, "NotAuthorizedOrNotFound", NOT_FOUND_MESSAGE, request)
        if shown["lifecycleState"] == "CREATING":
            return None, oci_error(409, "IncorrectState", f"Model {model_id} is CREATING", request)
        if_match = request.headers.get("if-match")
        if if_match and if_match != _etag(shown):
            return None, oci_error(
                412, "PreconditionFailed", "The if-match etag does not match the model's current etag", request
            )
        return record, None

    def record_operation(record: dict[str, Any], operation: str) -> str:
        work_request_id = f"ocid1.aivisionworkrequest.oc1.iad.amaaaaaa{state.new_hex_id(40)}"
        with state.lock:
            state.extra.setdefault(_OPERATIONS, {})[work_request_id] = {
                "model": record["id"],
                "operation": operation,
                "at": time.time(),
            }
        return work_request_id

    async def signed_find(
        find: Callable[[str], dict[str, Any] | None], key: str, request: Request
    ) -> tuple[dict[str, Any] | None, Any]:
        """The resource a signed GET names, or the answer to give instead (the signature's error or a 404)."""
        _body, denied = await check_signature(request, state)
        if denied:
            return None, denied
        record = find(key)
        if record is None:
            return None, oci_error(404, "NotAuthorizedOrNotFound", NOT_FOUND_MESSAGE, request)
        return record, None

    @api.post("/models")
    async def create_model(request: Request) -> Any:
        body, denied = await check_signature(request, state)
        if denied:
            return denied
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return oci_error(400, "InvalidParameter", "The request body is not valid JSON", request)
        if problems := _validate(data):
            return oci_error(400, "InvalidParameter", "; ".join(problems), request)

        async def create() -> JSONResponse:
            now = time.time()
            model_id = f"ocid1.aivisionmodel.oc1.iad.amaaaaaa{state.new_hex_id(40)}"
            work_request_id = f"ocid1.aivisionworkrequest.oc1.iad.amaaaaaa{state.new_hex_id(40)}"
            record: dict[str, Any] = {
                "id": model_id,
                "displayName": data.get("displayName") or f"model{datetime.now(timezone.utc):%Y%m%d%H%M%S}",
                "compartmentId": data["compartmentId"],
                "projectId": data["projectId"],
                "modelType": data["modelType"],
                "modelVersion": data.get("modelVersion") or "1.0",
                "isQuickMode": bool(data.get("isQuickMode", False)),
                "trainingDataset": data["trainingDataset"],
                "timeCreated": _rfc3339(now),
                "freeformTags": data.get("freeformTags") or {},
                "definedTags": data.get("definedTags") or {},
                "systemTags": {},
                "_created": now,
                "_digest": hashlib.sha256(body).hexdigest(),
                "_work_request_id": work_request_id,
                "_failure": state.failure_for(SERVICE, data.get("displayName")),
            }
            for optional in ("description", "maxTrainingDurationInHours", "testingDataset", "validationDataset"):
                if data.get(optional) is not None:
                    record[optional] = data[optional]
            with state.lock:
                state.extra.setdefault(_WORK_REQUESTS, {})[work_request_id] = model_id
            state.store(SERVICE, model_id, record)
            shown = view(state, record)
            headers = {"etag": _etag(shown), "opc-work-request-id": work_request_id}
            return oci_json(shown, request, status=201, headers=headers)

        return await with_retry_token(request, state, SERVICE, body, create)

    @api.get("/models/{model_id}")
    async def get_model(model_id: str, request: Request) -> Any:
        record, answer = await signed_find(find_model, model_id, request)
        if record is None:
            return answer
        shown = view(state, record)
        return oci_json(shown, request, headers={"etag": _etag(shown)})

    @api.get("/models")
    async def list_models(
        request: Request,
        compartmentId: str | None = None,
        projectId: str | None = None,
        displayName: str | None = None,
        lifecycleState: str | None = None,
        id: str | None = None,
        limit: int | None = None,
        page: str | None = None,
        sortBy: str | None = None,
        sortOrder: str | None = None,
    ) -> Any:
        _body, denied = await check_signature(request, state)
        if denied:
            return denied
        if not compartmentId and not projectId and not id:
            return oci_error(400, "InvalidParameter", "compartmentId, projectId or id is required", request)
        views = _sorted([view(state, r) for r in state.all(SERVICE) if visible(r)], MODEL_SORTS, sortBy, sortOrder)
        if isinstance(views, str):
            return oci_error(400, "InvalidParameter", views, request)
        wanted = {
            "compartmentId": compartmentId,
            "projectId": projectId,
            "displayName": displayName,
            "lifecycleState": lifecycleState,
            "id": id,
        }
        matches = [
            {k: v[k] for k in SUMMARY_FIELDS if k in v}
            for v in views
            if all(value is None or v.get(key) == value for key, value in wanted.items())
        ]
        return _page(matches, request, limit, page)

    @api.put("/models/{model_id}")
    async def update_model(model_id: str, request: Request) -> Any:
        record, answer = await change_model(model_id, request, "UPDATE_MODEL")
        if record is None:
            return answer
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            return oci_error(400, "InvalidParameter", "The request body is not valid JSON", request)
        if not isinstance(data, dict):
            return oci_error(400, "InvalidParameter", "the body must be a JSON object", request)
        # UpdateModelDetails (oci.ai_vision.models) carries exactly these four.
        problems = [f"{k} is not a field of UpdateModelDetails" for k in data if k not in _UPDATABLE]
        problems += [
            f"{k} must be a string"
            for k in ("displayName", "description")
            if k in data and not isinstance(data[k], str)
        ]
        problems += [
            f"{k} must be an object"
            for k in ("freeformTags", "definedTags")
            if k in data and not isinstance(data[k], dict)
        ]
        if problems:
            return oci_error(400, "InvalidParameter", "; ".join(problems), request)
        with state.lock:
            record.update({k: v for k, v in data.items() if v is not None})
            record["_changed"] = time.time()
        state.store(SERVICE, model_id, record)
        work_request_id = record_operation(record, "UPDATE_MODEL")
        return oci_json(None, request, status=202, headers={"opc-work-request-id": work_request_id})

    @api.delete("/models/{model_id}")
    async def delete_model(model_id: str, request: Request) -> Any:
        record, answer = await change_model(model_id, request, "DELETE_MODEL")
        if record is None:
            return answer
        with state.lock:
            record["_deleted"] = record["_changed"] = time.time()
        state.store(SERVICE, model_id, record)
        work_request_id = record_operation(record, "DELETE_MODEL")
        return oci_json(None, request, status=202, headers={"opc-work-request-id": work_request_id})

    @api.get("/workRequests")
    async def list_work_requests(
        request: Request,
        compartmentId: str | None = None,
        workRequestId: str | None = None,
        status: str | None = None,
        resourceId: str | None = None,
        limit: int | None = None,
        page: str | None = None,
        sortBy: str | None = None,
        sortOrder: str | None = None,
    ) -> Any:
        _body, denied = await check_signature(request, state)
        if denied:
            return denied
        if not compartmentId and not workRequestId:
            return oci_error(400, "InvalidParameter", "compartmentId or workRequestId is required", request)
        views = _sorted(work_request_views(), WORK_REQUEST_SORTS, sortBy, sortOrder)
        if isinstance(views, str):
            return oci_error(400, "InvalidParameter", views, request)
        matches = [
            {k: v[k] for k in WORK_REQUEST_SUMMARY_FIELDS if k in v}
            for v in views
            if (compartmentId is None or v["compartmentId"] == compartmentId)
            and (workRequestId is None or v["id"] == workRequestId)
            and (status is None or v["status"] == status)
            and (resourceId is None or any(r["identifier"] == resourceId for r in v["resources"]))
        ]
        return _page(matches, request, limit, page)

    @api.get("/workRequests/{work_request_id}")
    async def get_work_request(work_request_id: str, request: Request) -> Any:
        operation = state.extra.get(_OPERATIONS, {}).get(work_request_id)
        if operation is not None:
            record, answer = await signed_find(lambda _k: state.get(SERVICE, operation["model"]), "", request)
            return answer if record is None else oci_json(_operation_view(record, work_request_id, operation), request)
        record, answer = await signed_find(find_work_request, work_request_id, request)
        if record is None:
            return answer
        return oci_json(_work_request_view(state, record), request)

    @api.delete("/workRequests/{work_request_id}")
    async def cancel_work_request(work_request_id: str, request: Request) -> Any:
        """CancelWorkRequest: a training still ACCEPTED or IN_PROGRESS stops (work request CANCELED, model
        FAILED); a finished one answers 409, as does a model update's or delete's (they finish at once)."""
        if work_request_id in state.extra.get(_OPERATIONS, {}):
            _body, denied = await check_signature(request, state)
            if denied:
                return denied
            return oci_error(409, "IncorrectState", f"Work request {work_request_id} is SUCCEEDED", request)
        record, answer = await signed_find(find_work_request, work_request_id, request)
        if record is None:
            return answer
        status, _ = _work_request_status(state, record)
        if status not in ("ACCEPTED", "IN_PROGRESS"):
            return oci_error(409, "IncorrectState", f"Work request {work_request_id} is {status}", request)
        with state.lock:
            record["_canceled"] = record["_changed"] = time.time()
        return oci_json(None, request, status=202)

    @api.get("/workRequests/{work_request_id}/errors")
    async def list_work_request_errors(
        work_request_id: str, request: Request, limit: int | None = None, page: str | None = None
    ) -> Any:
        record, answer = await signed_find(find_work_request, work_request_id, request)
        if record is None:
            return answer
        return _page(_work_request_errors(state, record), request, limit, page)

    @api.get("/workRequests/{work_request_id}/logs")
    async def list_work_request_logs(
        work_request_id: str, request: Request, limit: int | None = None, page: str | None = None
    ) -> Any:
        record, answer = await signed_find(find_work_request, work_request_id, request)
        if record is None:
            return answer
        return _page(_work_request_logs(state, record), request, limit, page)

    @api.get("/projects")
    async def list_projects(
        request: Request,
        compartmentId: str | None = None,
        limit: int | None = None,
        page: str | None = None,
    ) -> Any:
        # What test_connection probes: one sandbox project in every compartment.
        _body, denied = await check_signature(request, state)
        if denied:
            return denied
        if not compartmentId:
            return oci_error(400, "InvalidParameter", "compartmentId is required", request)
        project = {
            "id": SANDBOX_PROJECT,
            "displayName": "sandbox",
            "compartmentId": compartmentId,
            "lifecycleState": "ACTIVE",
            "timeCreated": "2024-01-01T00:00:00.000Z",
            "freeformTags": {},
            "definedTags": {},
            "systemTags": {},
        }
        return _page([project], request, limit, page)

    known = list(api.routes)

    @api.api_route("/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def unknown(path: str, request: Request) -> Any:
        # OCI answers what it does not serve in its own shape, {code, message}, never FastAPI's {detail}.
        if any(route.path_regex.match(request.url.path) for route in known):  # type: ignore[attr-defined]
            return oci_error(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}", request)
        return oci_error(404, "NotAuthorizedOrNotFound", NOT_FOUND_MESSAGE, request)

    return api
