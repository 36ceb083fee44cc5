"""OCI AI Vision (``/20220125``): custom models and their work requests, signed with an OCI API key."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.oci_base import OCIBaseHook
from airflow_provider_modelreg.http import ApiRequest, api_path
from airflow_provider_modelreg.spec import CancelSpec, LifecycleSpec, ListRead, at, first_of, header_token

if TYPE_CHECKING:
    from airflow_provider_modelreg.auth.oci import OCICredentials
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

API = "/20220125"
# OCI answers 404 for a short while after a create (eventual consistency, API-NOTES 1): retry that many.
NOT_FOUND_RETRIES = 4
RETRY_TOKEN_MAX = 64
# A safety stop for list paging: 100 pages of up to 1000 items.
MAX_PAGES = 100


def read_model(ref: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("GET", api_path(f"{API}/models/{{}}", ref["model_id"]), not_found_retries=NOT_FOUND_RETRIES)


def work_request_errors(ref: Mapping[str, Any], _model: Any = None) -> ApiRequest | None:
    """The work request's errors explain a failed training best; only known when this task created it."""
    work_request_id = ref.get("work_request_id")
    if not work_request_id:
        return None
    return ApiRequest("GET", api_path(f"{API}/workRequests/{{}}/errors", work_request_id))


def format_work_request_errors(data: Any) -> str | None:
    items = data.get("items") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        return None
    texts = []
    for item in items:
        if isinstance(item, Mapping):
            code, message = item.get("code"), item.get("message")
            texts.append(f"{code}: {message}" if code and message else str(message or code or item))
    return "work request errors: " + "; ".join(texts) if texts else None


IN_PROGRESS = ("CREATING", "UPDATING")


def cancel_training(ref: Mapping[str, Any], _model: Any, _found: Any) -> ApiRequest | None:
    """Stop a model still training: cancel the work request that trains it.

    Oracle documents CancelWorkRequest (``DELETE /20220125/workRequests/{id}``, the oci SDK's
    ``AIServiceVisionClient.cancel_work_request``: "Cancel the work request with the given ID") as the way
    to stop an asynchronous operation; ``delete_model`` acts on the model, and OCI refuses it while the
    model is CREATING (409 IncorrectState), so it cannot stop a training. Without the work request's id
    (a model this task did not create) there is nothing to cancel by.
    """
    work_request_id = ref.get("work_request_id")
    if not work_request_id:
        return None
    return ApiRequest("DELETE", api_path(f"{API}/workRequests/{{}}", work_request_id))


def _list_group(_ref: Mapping[str, Any], model: Any) -> tuple[str, str] | None:
    # Models of one compartment and project (known once the wait has read its model), one list per
    # in-progress lifecycleState.
    if not isinstance(model, Mapping) or model.get("lifecycleState") not in IN_PROGRESS:
        return None
    if not model.get("compartmentId") or not model.get("projectId"):
        return None
    return str(model["compartmentId"]), str(model["projectId"])


def _list_models(group: tuple[str, str]) -> list[ApiRequest]:
    return [
        ApiRequest(
            "GET",
            f"{API}/models",
            params={"compartmentId": group[0], "projectId": group[1], "lifecycleState": state, "limit": 1000},
        )
        for state in IN_PROGRESS
    ]


MODEL_LIFECYCLE = LifecycleSpec(
    key="airflow_provider_modelreg.hooks.oci_vision:MODEL_LIFECYCLE",
    hook="airflow_provider_modelreg.hooks.oci_vision:OCIVisionHook",
    noun="OCI Vision model",
    read=read_model,
    state=at("lifecycleState"),
    success=frozenset({"ACTIVE"}),
    # DELETING/DELETED: the model is gone, so waiting for ACTIVE can never succeed.
    failure=frozenset({"FAILED", "DELETING", "DELETED"}),
    in_progress=frozenset({"CREATING", "UPDATING"}),
    reason=first_of("lifecycleDetails"),
    failure_details=work_request_errors,
    format_details=format_work_request_errors,
    cancel=CancelSpec(request=cancel_training, effect="its training work request was cancelled"),
    list_read=ListRead(
        group=_list_group,
        request=_list_models,
        member=lambda ref: str(ref["model_id"]),
        item_id=at("id"),
        paging=header_token("opc-next-page", "page", "items"),
        keep=("id", "lifecycleState", "compartmentId", "projectId"),
    ),
)


@dataclass(frozen=True)
class CreatedModel:
    """What ``POST /models`` answers: the model, and the work request that trains it."""

    model: dict[str, Any]
    work_request_id: str | None
    request_id: str | None


class OCIVisionHook(OCIBaseHook):
    """OCI AI Vision API. The connection holds OCI API-key (or config-file / session-token) credentials and a
    region; its host, when set, replaces the regional endpoint.

    :param conn_id: an ``oci_vision`` connection (default ``oci_default``); an ``oci`` connection made with
        apache-airflow-providers-oci's form (user in login, passphrase in password, ``private_key_content``)
        works as well.
    """

    conn_type = "oci_vision"
    default_conn_name = "oci_default"
    hook_name = "Oracle Cloud Infrastructure"  # as declared in get_provider_info (the form lists it so)
    service = "OCI Vision"
    endpoint_template = "https://vision.aiservice.{oci_domain}"

    # -- connection facts ---------------------------------------------------------------------------
    @cached_property
    def credentials(self) -> OCICredentials:
        from airflow_provider_modelreg.auth.oci import credentials_from_fields

        fields = self.oci_fields(self.get_connection(self.conn_id))
        self.mask(fields.get("private_key"), fields.get("pass_phrase"))
        return credentials_from_fields(fields)

    @property
    def region(self) -> str | None:
        return self.credentials.region

    @property
    def tenancy(self) -> str:
        return self.credentials.tenancy

    def probe(self) -> ApiRequest:
        # A cheap read that needs a valid signature: the projects of the tenancy's root compartment.
        return ApiRequest("GET", f"{API}/projects", params={"compartmentId": self.tenancy, "limit": 1})

    # -- models -------------------------------------------------------------------------------------
    def create_model(self, details: CreateModelDetails, retry_token: str | None = None) -> CreatedModel:
        """Start training a model. With ``retry_token``, a resend (by the client or a retried task) within
        24 h gets the first model back instead of a second one."""
        headers: dict[str, str] = {}
        if retry_token is not None:
            if not 1 <= len(retry_token) <= RETRY_TOKEN_MAX:
                raise ValueError(f"opc-retry-token must be 1..{RETRY_TOKEN_MAX} characters")
            headers["opc-retry-token"] = retry_token
        response = self.request(
            ApiRequest(
                "POST",
                f"{API}/models",
                json=details.wire(),
                headers=headers,
                # Only a retry token makes a create safe to resend.
                idempotent=None if retry_token else False,
            )
        )
        return CreatedModel(
            model=response.json_object(require=("id",)),
            work_request_id=response.headers.get("opc-work-request-id"),
            request_id=response.request_id,
        )

    def get_model(self, model_id: str) -> dict[str, Any]:
        return self.request(read_model({"model_id": model_id})).data

    def list_models(
        self,
        *,
        compartment_id: str | None = None,
        project_id: str | None = None,
        display_name: str | None = None,
        lifecycle_state: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Model summaries, all pages (``displayName`` is an exact match and not unique)."""
        params = {
            "compartmentId": compartment_id,
            "projectId": project_id,
            "displayName": display_name,
            "lifecycleState": lifecycle_state,
            "limit": limit,
        }
        return list(self._paged(f"{API}/models", params))

    # -- work requests ------------------------------------------------------------------------------
    def get_work_request(self, work_request_id: str) -> dict[str, Any]:
        return self.request(ApiRequest("GET", api_path(f"{API}/workRequests/{{}}", work_request_id))).data

    def list_work_request_errors(self, work_request_id: str) -> list[dict[str, Any]]:
        return list(self._paged(api_path(f"{API}/workRequests/{{}}/errors", work_request_id), {}))

    def list_work_request_logs(self, work_request_id: str) -> list[dict[str, Any]]:
        return list(self._paged(api_path(f"{API}/workRequests/{{}}/logs", work_request_id), {}))

    def _paged(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Items of every page: OCI puts the next page's token in the ``opc-next-page`` header."""
        page: str | None = None
        for _ in range(MAX_PAGES):
            response = self.request(ApiRequest("GET", path, params={**params, "page": page}))
            yield from response.json_list("items" if isinstance(response.data, Mapping) else None)
            page = response.headers.get("opc-next-page")
            if not page:
                return
        raise RuntimeError(f"{self.service} GET {path}: more than {MAX_PAGES} pages; narrow the query")
