"""NVIDIA NeMo Platform: model entities of the Models API v2 (``/apis/models/v2/workspaces/{ws}/models``).

Auth is off on a platform by default; when it is on, the connection's password is the access token
(an OIDC JWT, the SDK's ``NMP_ACCESS_TOKEN``) sent as ``Authorization: Bearer``. The host is the platform's
base URL (the SDK's ``NMP_BASE_URL``); there is no public default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.base import ModelRegHook, base_url_of, connection_extras
from airflow_provider_modelreg.http import ApiRequest, BearerAuth, RetryPolicy, ServiceClient, ServiceError, api_path
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.nemo import EITHER, LEGACY, ModelEntityRef, WorkspaceRef
from airflow_provider_modelreg.spec import CancelSpec, LifecycleSpec, ListRead, WatchVerdict, at, page_numbers
from airflow_provider_modelreg.transport import transport_options

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_modelreg.models.nemo import CreateModelEntity

# The platform's own default workspace name.
DEFAULT_WORKSPACE = "default"
API_PREFIX = "/apis/models/v2"
# Paths take a name of either rule (today's or 0.3.0's): the connection's rule is the operators' and sensors'.
PATH_NAMES = {"name_rule": EITHER}

SPEC_READY = "SPEC_READY"
AWAITING_SPEC = "AWAITING_SPEC"
AWAITING_FILESET = "AWAITING_FILESET"


def models_path(workspace: str, name: str | None = None) -> str:
    """``/apis/models/v2/workspaces/{workspace}/models[/{name}]``, both checked against the name rule.

    Paths accept a name of either rule, today's or the pre-0.4.0 one (both are quoted, so neither can leave its
    segment): which rule a platform enforces is the connection's ``name_rule``, applied by the operators and
    sensors.
    """
    if name is None:
        validate_request(WorkspaceRef, {"workspace": workspace}, PATH_NAMES)
        return api_path(f"{API_PREFIX}/workspaces/{{}}/models", workspace)
    validate_request(ModelEntityRef, {"workspace": workspace, "name": name}, PATH_NAMES)
    return api_path(f"{API_PREFIX}/workspaces/{{}}/models/{{}}", workspace, name)


def read_model(ref: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("GET", models_path(ref["workspace"], ref["name"]))


def spec_state(entity: Any) -> str:
    """A model entity has no status: it is ready once the platform has filled ``spec`` (from its fileset).

    Without a fileset nothing will fill it until someone sets one (PATCH), hence a state of its own that
    tells a waiting sensor's log why it waits.
    """
    if not isinstance(entity, dict):
        return AWAITING_SPEC
    if entity.get("spec") is not None:
        return SPEC_READY
    return AWAITING_SPEC if entity.get("fileset") else AWAITING_FILESET


JOBS_PREFIX = "/apis/jobs/v2"
ENTITIES_PREFIX = "/apis/entities/v2"
SPEC_JOB_SOURCE = "models-system"
SPEC_FAILED = "SPEC_ANALYSIS_ERROR"
SPEC_CANCELLED = "SPEC_ANALYSIS_CANCELLED"
# The wait's state while the entity's newest spec-analysis job runs although the entity answers a spec (the
# previous fileset's, after a PATCH to a new one).
SPEC_ANALYSIS_RUNNING = "SPEC_ANALYSIS_RUNNING"
# A spec-analysis job's statuses (the jobs API's PlatformJobStatus) while it may still write a spec.
SPEC_JOB_RUNNING = frozenset({"created", "pending", "active", "cancelling", "pausing", "paused", "resuming"})


def spec_job_description(ref: Mapping[str, Any]) -> str:
    """How the platform describes the spec-analysis job of an entity (nemo-helix 0.8.1, models API v2)."""
    return f"Model Spec Analyzer for model {ref['workspace']}/{ref['name']}"


def spec_jobs_request(workspace: str) -> ApiRequest:
    """The workspace's models-system jobs, newest first."""
    return ApiRequest(
        "GET",
        api_path(f"{JOBS_PREFIX}/workspaces/{{}}/jobs", workspace),
        params={"filter[source]": SPEC_JOB_SOURCE, "sort": "-created_at", "page_size": 100},
    )


def watch_spec_job(ref: Mapping[str, Any], entity: Any) -> ApiRequest | None:
    """Whenever the entity names a fileset, spec or not: its spec-analysis jobs (spec_job_verdict judges them).

    The platform starts a job when an entity gets a fileset (create, or a PATCH to a new one) and keeps
    answering the previous fileset's spec until that job has written the new one (nemo-platform 0.6.0), so a
    spec present is the asked-about fileset's only once no job of the entity still runs."""
    if spec_state(entity) == AWAITING_FILESET:
        return None
    if isinstance(entity, Mapping) and not entity.get("fileset"):
        return None  # a hand-written spec, no fileset: no job will ever rewrite it
    return spec_jobs_request(ref["workspace"])


def spec_job_of(ref: Mapping[str, Any], data: Any) -> Mapping[str, Any] | None:
    """The entity's newest spec-analysis job in a jobs list (newest first), or None when not listed."""
    jobs = data.get("data") if isinstance(data, Mapping) else None
    wanted = spec_job_description(ref)
    for job in jobs if isinstance(jobs, list) else []:
        if isinstance(job, Mapping) and job.get("description") == wanted:
            return job
    return None


def cancel_spec_job(ref: Mapping[str, Any], _entity: Any, found: Any) -> ApiRequest | None:
    """Stop the spec analysis: the jobs API's cancel (nemo-helix 0.8.1: ``POST
    /apis/jobs/v2/workspaces/{ws}/jobs/{name}/cancel``; 409 once the job is terminal, 404 unknown). The
    entity itself has nothing to stop; it stays, without a spec."""
    job = spec_job_of(ref, found)
    if job is None or job.get("status") in ("completed", "error", "cancelled") or not job.get("name"):
        return None
    return ApiRequest(
        "POST", api_path(f"{JOBS_PREFIX}/workspaces/{{}}/jobs/{{}}/cancel", ref["workspace"], job["name"])
    )


def spec_job_verdict(ref: Mapping[str, Any], data: Any) -> WatchVerdict | None:
    """What the entity's newest spec-analysis job decides (a newer job after a PATCH wins over older ones).

    Running: the wait goes on, even while the entity answers an older fileset's spec. ``error``: the wait
    fails at once with the job's message. ``cancelled``: it fails too, as nothing will write the spec.
    ``completed``, or no job listed: the entity's own answer decides."""
    job = spec_job_of(ref, data)
    if job is None:
        return None
    status = job.get("status")
    if status in SPEC_JOB_RUNNING:
        return WatchVerdict("waiting", SPEC_ANALYSIS_RUNNING)
    if status == "cancelled":
        return WatchVerdict(
            "failure",
            SPEC_CANCELLED,
            f"spec-analysis job {job.get('name')} was cancelled, so the spec of the entity's fileset will not be "
            "written (PATCH the fileset again to start a new analysis)",
        )
    if status != "error":
        return None
    details = job.get("error_details") or job.get("status_details") or {}
    message = details.get("message") if isinstance(details, Mapping) else None
    return WatchVerdict(
        "failure", SPEC_FAILED, f"spec-analysis job {job.get('name')} ended error: {message or details or 'no message'}"
    )


# The ref is {"workspace", "name"} in that order, so describe() reads "... workspace=ws, name=n" and every
# timeout message names both.
MODEL_SPEC_LIFECYCLE = LifecycleSpec(
    key="airflow_provider_modelreg.hooks.nemo:MODEL_SPEC_LIFECYCLE",
    hook="airflow_provider_modelreg.hooks.nemo:NemoModelsHook",
    noun="NeMo model entity",
    read=read_model,
    state=spec_state,
    success=frozenset({SPEC_READY}),
    # The entity carries no failure signal (a failed spec-analysis job leaves spec null for ever) nor says that
    # a new spec is being made: its newest job on the jobs API is watched with every read, by the sync sensor,
    # the deferrable one, the operators' waits and the trigger alike (spec_job_verdict).
    failure=frozenset({SPEC_FAILED, SPEC_CANCELLED}),
    watch=watch_spec_job,
    watch_verdict=spec_job_verdict,
    cancel=CancelSpec(find=watch_spec_job, request=cancel_spec_job, effect="its spec-analysis job was cancelled"),
    in_progress=frozenset({AWAITING_SPEC, AWAITING_FILESET, SPEC_ANALYSIS_RUNNING}),
    # Every entity of the workspace (the list cannot filter on a null spec), 1000 a page: the most the platform
    # serves. Its models route passes page_size to the entity store, which takes 1..1000 and answers more with
    # an error the route turns into a 500 (nemo-platform 0.6.0 / nemo-helix 0.8.1 server code).
    list_read=ListRead(
        group=lambda ref, _entity: (str(ref["workspace"]),),
        request=lambda g: ApiRequest("GET", models_path(g[0]), params={"page": 1, "page_size": 1000}),
        member=lambda ref: str(ref["name"]),
        item_id=at("name"),
        paging=page_numbers("page", at("pagination.total_pages"), "data"),
        keep=("name", "spec", "fileset"),
    ),
)


class NemoModelsHook(ModelRegHook):
    """NVIDIA NeMo Platform Models API v2: create, read, list and delete model entities.

    Connection: host = the platform's base URL (required), password = access token (optional: none sends
    no ``Authorization`` header), extra ``workspace`` = default workspace (else ``default``).

    :param conn_id: a ``nemo_platform`` connection (default ``nemo_default``).
    """

    conn_type = "nemo_platform"
    default_conn_name = "nemo_default"
    hook_name = "NVIDIA NeMo Platform"
    service = "NeMo Platform"
    probe_request = ApiRequest("GET", models_path(DEFAULT_WORKSPACE), params={"page_size": 1})

    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        extras = connection_extras(conn)
        if not conn.host:
            raise ValueError(
                f"connection {conn.conn_id!r}: the host is empty; set it to the platform's base URL (NMP_BASE_URL)"
            )
        auth = None
        if conn.password:  # a platform with auth off needs no token at all
            cls.mask(conn.password)
            auth = BearerAuth(conn.password)
        return ServiceClient(
            service=cls.service,
            base_url=base_url_of(conn.host, "", port=conn.port),
            auth=auth,
            **transport_options(extras, retry),
        )

    @property
    def default_workspace(self) -> str:
        """The connection's ``workspace`` extra, else the platform's ``default`` workspace."""
        return str(connection_extras(self.get_connection(self.conn_id)).get("workspace") or DEFAULT_WORKSPACE)

    @property
    def name_context(self) -> dict[str, Any]:
        """Validation context naming the connection's ``name_rule`` (empty: today's rule)."""
        from airflow_provider_modelreg.version_compat import AirflowNotFoundException

        try:
            rule = connection_extras(self.get_connection(self.conn_id)).get("name_rule")
        except AirflowNotFoundException:  # the call that needs it will say so; validation uses today's rule
            return {}
        if rule not in (None, "", LEGACY):
            raise ValueError(f"connection {self.conn_id!r}: name_rule must be empty or {LEGACY!r}, got {rule!r}")
        return {"name_rule": rule or ""}

    def probe(self) -> ApiRequest:
        return ApiRequest("GET", models_path(self.default_workspace), params={"page_size": 1})

    def test_connection(self) -> tuple[bool, str]:
        """Read the connection's workspace from the Entities API first: NVIDIA's server answers a list of models
        in a workspace that does not exist with a bare HTTP 500 "Failed to list model entities" (nemo-platform
        0.6.0), which names nothing and would be retried as a server fault; the workspace read answers 404."""
        try:
            workspace = self.default_workspace
            validate_request(WorkspaceRef, {"workspace": workspace}, PATH_NAMES)
            self.request(ApiRequest("GET", api_path(f"{ENTITIES_PREFIX}/workspaces/{{}}", workspace)))
        except ServiceError as exc:
            if exc.status == 404:
                return False, (
                    f"workspace {workspace!r} does not exist on the NeMo Platform at {self.client.base_url}: create "
                    f"it (POST {ENTITIES_PREFIX}/workspaces) or set the connection's workspace extra to one that "
                    f"exists ({exc})"
                )
            return False, str(exc)
        except Exception as exc:  # a bad connection definition: report it, never raise from the UI
            return False, f"{type(exc).__name__}: {exc}"
        return super().test_connection()

    # -- calls ----------------------------------------------------------------------------------------
    def create_model(self, workspace: str, request: CreateModelEntity) -> dict[str, Any]:
        """Create a model entity (201). A duplicate name answers 409; the caller decides what that means."""
        # No idempotency key exists: never resend blindly (the operator looks the name up instead).
        return self.request(ApiRequest("POST", models_path(workspace), json=request.wire(), idempotent=False)).data

    def get_model(self, workspace: str, name: str) -> dict[str, Any]:
        return self.request(read_model({"workspace": workspace, "name": name})).data

    def find_model(self, workspace: str, name: str) -> dict[str, Any] | None:
        """The entity, or None when the platform answers 404."""
        try:
            return self.get_model(workspace, name)
        except ServiceError as exc:
            if exc.status == 404:
                return None
            raise

    def list_models(
        self,
        workspace: str,
        *,
        name: str | None = None,
        project: str | None = None,
        sort: str | None = None,
        page_size: int = 100,
        max_pages: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every entity of the workspace matching the filters, following ``pagination.total_pages``.

        :param name: ``filter[name]``; :param project: ``filter[project]``; :param sort: e.g. ``name``,
            ``-created_at``; :param max_pages: stop after that many pages (None: all).
        """
        entities: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {
                "page": page,
                "page_size": page_size,
                "sort": sort,
                "filter[name]": name,
                "filter[project]": project,
            }
            response = self.request(ApiRequest("GET", models_path(workspace), params=params))
            data = response.json_object() if response.data is not None else {}
            batch = response.json_list("data") if data else []
            entities.extend(batch)
            pagination = data.get("pagination")
            total_pages = int(pagination.get("total_pages") or 0) if isinstance(pagination, dict) else 0
            # An empty page ends the walk too, so a server that miscounts cannot loop us forever.
            if not batch or page >= total_pages or (max_pages is not None and page >= max_pages):
                return entities
            page += 1

    def delete_model(self, workspace: str, name: str) -> None:
        """Delete a model entity (204)."""
        self.request(ApiRequest("DELETE", models_path(workspace, name)))
