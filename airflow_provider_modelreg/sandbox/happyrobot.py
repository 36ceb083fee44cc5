"""HappyRobot at its real paths: ``/api/v1/models`` create, get, list; Bearer API key."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_modelreg.sandbox.state import SandboxState, phase, public

SERVICE = "happyrobot"
PREFIX = "/api/v1"


def _error(status: int, error: str, message: str, details: Any = None) -> JSONResponse:
    body = {"error": error, "message": message, "statusCode": status}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status)


def view(state: SandboxState, record: dict[str, Any]) -> dict[str, Any]:
    """A model as the API shows it now (its status computed from its age)."""
    failure = record.get("_failure")
    status = phase(
        record,
        state.seconds(SERVICE),
        [("pending", 0.2), ("training", 0.8)],
        "failed" if failure else "active",
    )
    view = public(record) | {"status": status}
    if status == "failed":
        view["error"] = failure
    return view


def _validate(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = []
    for name in ("use_case_id", "name", "from_model_id"):
        if not isinstance(body.get(name), str) or not body.get(name):
            problems.append(f"{name} is required and must be a non-empty string")
    if isinstance(body.get("from_model_id"), str) and len(body["from_model_id"]) != 24:
        problems.append("from_model_id must be 24 characters long")
    for name in ("train_sample_ids", "test_sample_ids"):
        value = body.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{name} is required and must be an array of strings")
    if "explain_tools" in body and not isinstance(body["explain_tools"], bool):
        problems.append("explain_tools must be a boolean")
    return problems


def router(state: SandboxState) -> APIRouter:
    api = APIRouter(prefix=PREFIX)

    def authorised(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in state.happyrobot_api_keys:
            return _error(401, "Unauthorized", "Invalid or missing API key")
        return None

    @api.post("/models")
    async def create_model(request: Request) -> Any:
        if denied := authorised(request):
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Bad Request", "body is not valid JSON")
        if problems := _validate(body):
            return _error(400, "Bad Request", "Validation failed", problems)
        model_id = state.new_hex_id(24)
        record = {
            "id": model_id,
            "organization_id": request.headers.get("x-organization-id", "sandbox-org"),
            "use_case_id": body["use_case_id"],
            "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "name": body["name"],
            "description": f"Clone of {body['from_model_id']}",
            "train_sample_ids": body["train_sample_ids"],
            "test_sample_ids": body["test_sample_ids"],
            "from_model_id": body["from_model_id"],
            "trainable": False,
            "use_backup_for_generations": False,
            "use_backup_when_idle": False,
            "_failure": state.failure_for(SERVICE, body["name"]),
        }
        state.store(SERVICE, model_id, record)
        return view(state, record)

    @api.get("/models/{model_id}")
    async def get_model(model_id: str, request: Request) -> Any:
        if denied := authorised(request):
            return denied
        record = state.get(SERVICE, model_id)
        if record is None:
            return _error(404, "Not Found", f"Model {model_id} not found")
        return view(state, record)

    @api.get("/models")
    async def list_models(
        request: Request,
        use_case_id: str | None = None,
        status: str | None = None,
        trainable: bool | None = None,
    ) -> Any:
        if denied := authorised(request):
            return denied
        # List items carry no train_sample_ids (docs.happyrobot.ai, API-NOTES 9); a single read does.
        views = [{k: v for k, v in view(state, r).items() if k != "train_sample_ids"} for r in state.all(SERVICE)]
        return [
            v
            for v in views
            if (use_case_id is None or v["use_case_id"] == use_case_id)
            and (status is None or v["status"] == status)
            and (trainable is None or v["trainable"] == trainable)
        ]

    return api
