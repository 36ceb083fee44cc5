"""HappyRobot: clone and train models (``/api/v1/models``), Bearer API key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.base import (
    ModelRegHook,
    base_url_of,
    connection_extras,
)
from airflow_provider_modelreg.http import ApiRequest, BearerAuth, RetryPolicy, ServiceClient, api_path
from airflow_provider_modelreg.spec import CancelSpec, LifecycleSpec, ListRead, at, first_of, one_page
from airflow_provider_modelreg.transport import transport_options

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_modelreg.models.happyrobot import CreateModelRequest

DEFAULT_BASE_URL = "https://app.happyrobot.ai/api/v1"


def read_model(ref: dict[str, Any]) -> ApiRequest:
    return ApiRequest("GET", api_path("/models/{}", ref["model_id"]))


IN_PROGRESS = ("pending", "training")


def _list_group(_ref: Mapping[str, Any], model: Any) -> str | None:
    # Models of one use case (known once the wait has read its model), one list per in-progress status.
    if isinstance(model, Mapping) and model.get("use_case_id") and model.get("status") in IN_PROGRESS:
        return str(model["use_case_id"])
    return None


MODEL_LIFECYCLE = LifecycleSpec(
    key="airflow_provider_modelreg.hooks.happyrobot:MODEL_LIFECYCLE",
    hook="airflow_provider_modelreg.hooks.happyrobot:HappyRobotHook",
    noun="HappyRobot model",
    read=read_model,
    state=at("status"),
    success=frozenset({"active"}),
    failure=frozenset({"failed"}),
    in_progress=frozenset({"pending", "training"}),
    # No failure field is documented; these are the names HappyRobot's error bodies and peers use.
    reason=first_of("error", "failure_reason", "status_message", "message"),
    # HappyRobot's API reference documents create, read and list of models and nothing that stops a
    # training (no cancel, stop or delete), and HappyRobot ships no client library to learn one from.
    cancel=CancelSpec(unavailable="HappyRobot's API has no way to stop a model's training"),
    list_read=ListRead(
        group=_list_group,
        request=lambda use_case: [
            ApiRequest("GET", "/models", params={"use_case_id": use_case, "status": s}) for s in IN_PROGRESS
        ],
        member=lambda ref: str(ref["model_id"]),
        item_id=at("id"),
        paging=one_page("data"),
        keep=("id", "status", "use_case_id"),
    ),
)


def _parse_time(value: Any) -> datetime:
    """An ISO time for ordering; one without a timezone is read as UTC (HappyRobot's times are UTC)."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.max.replace(tzinfo=timezone.utc)  # unreadable: after every readable one
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


class HappyRobotHook(ModelRegHook):
    """HappyRobot API: the connection's password is the API key, its host an optional base URL.

    :param conn_id: a ``happyrobot`` connection (default ``happyrobot_default``).
    """

    conn_type = "happyrobot"
    default_conn_name = "happyrobot_default"
    hook_name = "HappyRobot"
    service = "HappyRobot"
    probe_request = ApiRequest("GET", "/models", params={"status": "active"})

    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        extras = connection_extras(conn)
        if not conn.password:
            raise ValueError(f"connection {conn.conn_id!r}: the API key (password) is empty")
        cls.mask(conn.password)
        headers = {}
        if extras.get("organization_id"):
            headers["x-organization-id"] = str(extras["organization_id"])
        return ServiceClient(
            service=cls.service,
            base_url=base_url_of(conn.host, DEFAULT_BASE_URL, port=conn.port),
            auth=BearerAuth(conn.password),
            headers=headers,
            **transport_options(extras, retry),
        )

    def create_model(self, request: CreateModelRequest) -> dict[str, Any]:
        # No idempotency key exists: never resend blindly (see find_models and create_once).
        response = self.request(ApiRequest("POST", "/models", json=request.wire(), idempotent=False))
        return response.json_object(require=("id",))

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self.request(read_model({"model_id": model_id})).data

    def list_models(
        self, use_case_id: str | None = None, status: str | None = None, trainable: bool | None = None
    ) -> list[dict[str, Any]]:
        params = {"use_case_id": use_case_id, "status": status}
        if trainable is not None:
            params["trainable"] = str(trainable).lower()
        response = self.request(ApiRequest("GET", "/models", params=params))
        # A bare array, or {"data": [...]} as HappyRobot's newer list answers are.
        models = response.json_list("data" if isinstance(response.data, Mapping) else None)
        return [m for m in models if isinstance(m, dict)]

    def find_models(self, request: CreateModelRequest) -> list[dict[str, Any]]:
        """The models of ``request``'s use case with exactly its name and source model, oldest first.

        The create operator's names carry the task instance's idempotency key, so these are the models an
        earlier try or attempt of that task instance created (HappyRobot's list filters by use case and
        status only, so the name is matched here).
        """
        matches = [
            model
            for model in self.list_models(use_case_id=request.use_case_id)
            if model.get("name") == request.name
            and model.get("use_case_id", request.use_case_id) == request.use_case_id
            and model.get("from_model_id") == request.from_model_id
            and isinstance(model.get("id"), str)
        ]
        return sorted(matches, key=lambda m: (_parse_time(m.get("created_at")), m["id"]))
