"""MLflow tracking and registry over the REST API 2.0: one client, two flavours.

* :class:`MlflowHook` (``mlflow``): any MLflow tracking server; no auth, basic auth or a Bearer token.
* :class:`OCIDataPlatformMlflowHook` (``oci_aidp``): OCI AI Data Platform's MLOps API, which is the same
  API under other prefixes, with OCI request signing, ``opc-retry-token`` on creates and an optional
  ``dh-user-principal`` header.

The flavours differ in path prefixes, auth and headers only; every call, payload and parse is shared.
Errors keep the service's code (:func:`is_already_exists`, :func:`is_not_found` know both flavours').
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from airflow_provider_modelreg.hooks.base import (
    ModelRegHook,
    base_url_of,
    connection_extras,
    split_user_info,
)
from airflow_provider_modelreg.hooks.oci_base import OCIBaseHook
from airflow_provider_modelreg.http import (
    ApiRequest,
    ApiResponse,
    BasicAuth,
    BearerAuth,
    RetryPolicy,
    ServiceClient,
    ServiceError,
    api_path,
)
from airflow_provider_modelreg.links.mlflow import run_url as run_page_url
from airflow_provider_modelreg.links.mlflow import run_url_template
from airflow_provider_modelreg.spec import CancelSpec, LifecycleSpec, ListRead, at, body_token
from airflow_provider_modelreg.transport import transport_options

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_modelreg.models.mlflow import (
        CreateModelVersionRequest,
        CreateRegisteredModelRequest,
        CreateRunRequest,
        LogBatchRequest,
        MlflowServerRules,
        UpdateRunRequest,
    )

MLFLOW_API = "/api/2.0/mlflow"
AIDP_API_VERSION = "20260430"
# Oracle's aidp-python-client uses this host form (API-NOTES section 8); a connection host overrides it.
# {oci_domain} is <region>.oci.<the realm's second-level domain> (auth/oci_regions.py).
AIDP_ENDPOINT_TEMPLATE = "https://datalake.{oci_domain}"

# Duplicate and not-found codes of both flavours: open-source MLflow answers 400 RESOURCE_ALREADY_EXISTS
# and 404 RESOURCE_DOES_NOT_EXIST; OCI services answer {code, message} with their own codes.
ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS", "Conflict", "AlreadyExists", "ResourceAlreadyExists"})
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "NotAuthorizedOrNotFound", "NotFound", "ResourceNotFound"})

IDEMPOTENCY_TAG = "airflow.idempotency_key"
SEARCH_PAGE_SIZE = 1000


def is_already_exists(exc: ServiceError) -> bool:
    return exc.code in ALREADY_EXISTS_CODES


def is_not_found(exc: ServiceError) -> bool:
    return exc.code in NOT_FOUND_CODES or (exc.status == 404 and exc.code is None)


def quote_filter_value(value: str) -> str:
    """A string literal for MLflow's filter grammar (single quotes, or double when the value has one).

    MLflow's filter parser takes a literal's characters between its quotes as they are (backslashes
    included: 2.22.5 and 3.17.2 find ``q\\``, ``q\\'x`` and names with newlines this way); there is no
    escape for the quote character itself. :func:`name_filter` handles names holding both quotes.
    """
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot write {value!r} as an MLflow filter literal: it holds both quote characters")


def name_filter(name: str) -> str:
    """A ``model-versions/search`` clause selecting the registered model ``name``, for any name MLflow takes.

    ``name = '<name>'`` where the name can be written as a literal; otherwise (both quote characters)
    ``name LIKE`` with each single quote, and each backslash (an escape in some databases' LIKE), replaced
    by ``_`` (any one character). That may also select other models: callers keep only the versions whose
    ``name`` equals ``name``.
    """
    try:
        return f"name={quote_filter_value(name)}"
    except ValueError:
        pattern = "".join("_" if c in "'\\" else c for c in name)
        return f"name LIKE '{pattern}'"


# -- lifecycle specs ----------------------------------------------------------------------------------
# A reference carries the API prefix ("api") next to the resource's ids: the prefix depends on the
# connection (OCI platform and workspace), while a spec's read must be a pure function of the reference.


@dataclass(frozen=True)
class MlflowLifecycleSpec(LifecycleSpec):
    """A LifecycleSpec whose descriptions leave out the API prefix of the reference."""

    def describe(self, ref: Mapping[str, Any]) -> str:
        return f"{self.noun} " + ", ".join(f"{k}={v}" for k, v in ref.items() if k != "api")


def read_model_version(ref: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest(
        "GET", f"{ref['api']}/model-versions/get", params={"name": ref["name"], "version": str(ref["version"])}
    )


def read_run(ref: Mapping[str, Any]) -> ApiRequest:
    return ApiRequest("GET", f"{ref['api']}/runs/get", params={"run_id": ref["run_id"]})


def kill_run(ref: Mapping[str, Any], _run: Any, _found: Any) -> ApiRequest:
    """End the run KILLED now, as MLflow's own client does for a killed run (``runs/update``, status
    KILLED with an ``end_time``)."""
    body = {"run_id": ref["run_id"], "status": "KILLED", "end_time": int(time.time() * 1000)}
    return ApiRequest("POST", f"{ref['api']}/runs/update", json=body, idempotent=True)


def _unwrap(key: str) -> Any:
    def unwrap(data: Any) -> Any:
        return data[key] if isinstance(data, Mapping) and isinstance(data.get(key), Mapping) else data

    return unwrap


def _versions_group(ref: Mapping[str, Any], _version: Any) -> tuple[str, str] | None:
    # Every version of one registered model (the search filters by name, not by status).
    try:
        return str(ref["api"]), quote_filter_value(str(ref["name"]))
    except ValueError:
        return None


def _search_versions(group: tuple[str, str]) -> ApiRequest:
    params = {"filter": f"name={group[1]}", "max_results": SEARCH_PAGE_SIZE}
    return ApiRequest("GET", f"{group[0]}/model-versions/search", params=params)


MODEL_VERSION_LIFECYCLE = MlflowLifecycleSpec(
    key="airflow_provider_modelreg.hooks.mlflow:MODEL_VERSION_LIFECYCLE",
    # MlflowHook builds the client of either flavour from the connection's type (see client_from_connection).
    hook="airflow_provider_modelreg.hooks.mlflow:MlflowHook",
    noun="MLflow model version",
    read=read_model_version,
    state=at("status"),
    success=frozenset({"READY"}),
    failure=frozenset({"FAILED_REGISTRATION"}),
    in_progress=frozenset({"PENDING_REGISTRATION"}),
    reason=at("status_message"),
    unwrap=_unwrap("model_version"),
    cancel=CancelSpec(
        unavailable="MLflow has no way to stop a model version's registration (the registry finishes it itself)"
    ),
    list_read=ListRead(
        group=_versions_group,
        request=_search_versions,
        member=lambda ref: str(ref["version"]),
        item_id=at("version"),
        paging=body_token("next_page_token", "page_token", "model_versions"),
        keep=("name", "version", "status"),
    ),
)

RUN_LIFECYCLE = MlflowLifecycleSpec(
    key="airflow_provider_modelreg.hooks.mlflow:RUN_LIFECYCLE",
    hook="airflow_provider_modelreg.hooks.mlflow:MlflowHook",
    noun="MLflow run",
    read=read_run,
    state=at("info.status"),
    success=frozenset({"FINISHED"}),
    # INTERNAL_ERROR exists only in the OCI flavour.
    failure=frozenset({"FAILED", "KILLED", "INTERNAL_ERROR"}),
    in_progress=frozenset({"RUNNING", "SCHEDULED"}),
    unwrap=_unwrap("run"),
    cancel=CancelSpec(request=kill_run, effect="the run was ended KILLED"),
)


# -- hooks ------------------------------------------------------------------------------------------
class MlflowHook(ModelRegHook):
    """An MLflow tracking server: the connection's host is the tracking URI; extra ``auth_type`` is
    ``none`` (default), ``basic`` (login and password) or ``bearer`` (password is the token).

    Given an ``oci_aidp`` connection, it builds that flavour's client instead, so one lifecycle spec and
    one trigger serve both; use :func:`mlflow_hook` to get the hook class that matches a connection.

    :param conn_id: an ``mlflow`` connection (default ``mlflow_default``).
    """

    conn_type = "mlflow"
    default_conn_name = "mlflow_default"
    hook_name = "MLflow tracking server"
    service = "MLflow"
    # Only the OCI flavour documents a retry token; a plain server gets look-before-create instead.
    uses_retry_token: ClassVar[bool] = False
    # The rules of each plain server already asked, by connection and base URL: one GET /version each per
    # process (a server's version does not change under a running task).
    _server_rules_seen: ClassVar[dict[tuple[str, str], MlflowServerRules]] = {}

    # -- connection -> client and prefixes (pure, so triggers build the same client) ------------
    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        if conn.conn_type == OCIDataPlatformMlflowHook.conn_type and cls is MlflowHook:
            return OCIDataPlatformMlflowHook.client_from_connection(conn, retry)
        extras = connection_extras(conn)
        auth_type = str(extras.get("auth_type") or "none").lower()
        # Credentials written into the tracking URI (http://user:pw@host, as MLflow's own client accepts)
        # are basic auth; they are taken out of the URL, so no message, repr, XCom or link shows them.
        host, user_info = split_user_info(conn.host)
        login, password = conn.login, conn.password
        if user_info is not None:
            cls.mask(user_info[1])
            if auth_type == "bearer" or (login and (login, password or "") != user_info):
                raise ValueError(
                    f"connection {conn.conn_id!r}: the host holds credentials (user:password@) and the "
                    "connection sets others; keep them in the login and password fields only"
                )
            auth_type, (login, password) = "basic", user_info
        auth: httpx.Auth | None
        if auth_type == "none":
            auth = None
        elif auth_type == "basic":
            if not login:
                raise ValueError(f"connection {conn.conn_id!r}: basic auth needs a login")
            cls.mask(password)
            auth = BasicAuth(login, password or "")
        elif auth_type == "bearer":
            if not conn.password:
                raise ValueError(f"connection {conn.conn_id!r}: bearer auth needs the token in the password")
            cls.mask(conn.password)
            auth = BearerAuth(conn.password)
        else:
            raise ValueError(f"connection {conn.conn_id!r}: auth_type must be none, basic or bearer")
        if not host:
            raise ValueError(f"connection {conn.conn_id!r}: set the tracking URI (host)")
        return ServiceClient(
            service=cls.service,
            base_url=base_url_of(host, "", port=conn.port, scheme="http"),
            auth=auth,
            **transport_options(extras, retry),
        )

    @classmethod
    def api_prefixes(cls, conn: Connection) -> tuple[str, str]:
        """(tracking prefix, registry prefix) for this connection."""
        if conn.conn_type == OCIDataPlatformMlflowHook.conn_type and cls is MlflowHook:
            return OCIDataPlatformMlflowHook.api_prefixes(conn)
        return MLFLOW_API, MLFLOW_API

    @classmethod
    def run_page_template(cls, conn: Connection, client: ServiceClient) -> str | None:
        """Where a run's page is (links/mlflow.py): extra ``ui_url`` when set, else the MLflow UI the
        tracking server serves at its URI (``client.base_url`` holds no credentials)."""
        if conn.conn_type == OCIDataPlatformMlflowHook.conn_type and cls is MlflowHook:
            return OCIDataPlatformMlflowHook.run_page_template(conn, client)
        return run_url_template(connection_extras(conn).get("ui_url") or client.base_url)

    @cached_property
    def connection(self) -> Connection:
        return self.get_connection(self.conn_id)

    @cached_property
    def client(self) -> ServiceClient:
        return self.client_from_connection(self.connection, self.retry)

    @cached_property
    def _prefixes(self) -> tuple[str, str]:
        return self.api_prefixes(self.connection)

    @property
    def tracking_api(self) -> str:
        """Prefix of experiments and runs."""
        return self._prefixes[0]

    @property
    def registry_api(self) -> str:
        """Prefix of registered models and model versions."""
        return self._prefixes[1]

    @cached_property
    def server_rules(self) -> MlflowServerRules:
        """What this connection's server accepts where MLflow servers differ
        (:class:`~airflow_provider_modelreg.models.mlflow.MlflowServerRules`): read from ``GET /version``, which
        every MLflow server answers with its version as plain text. A server that does not say (a proxy,
        another implementation: a 4xx answer) gets the rules of 2.x and 3.x together, so nothing either would
        refuse is sent; an unreachable or failing one (no answer, 429, 5xx) raises its ServiceError once the
        retries are spent."""
        from airflow_provider_modelreg.models.mlflow import MlflowServerRules

        key = (self.conn_id, self.client.base_url)
        if (known := self._server_rules_seen.get(key)) is not None:
            return known
        try:
            answer = self.request(ApiRequest("GET", "/version", raw=True)).data
            version = answer.decode("utf-8", "replace").strip() if isinstance(answer, bytes) else str(answer)
        except ServiceError as exc:
            if exc.status is None or exc.status == 429 or exc.status >= 500:
                raise  # unreachable or busy: the task's retry asks again (no refusal on a guess)
            self.log.info("The MLflow server did not tell its version (%s): applying 2.x and 3.x rules", exc)
            return MlflowServerRules.of_mlflow(None)
        rules = MlflowServerRules.of_mlflow(version if len(version) < 40 else None)
        self._server_rules_seen[key] = rules
        return rules

    def probe(self) -> ApiRequest:
        # The path depends on the connection (OCI platform and workspace), so no class-level probe_request.
        return ApiRequest("GET", f"{self.tracking_api}/experiments/search", params={"max_results": 1})

    @cached_property
    def run_page(self) -> str | None:
        """This connection's run-page template (ValueError naming ``ui_url`` when it is malformed)."""
        return self.run_page_template(self.connection, self.client)

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page for a person, or None where none can be built (links/mlflow.py)."""
        return run_page_url(self.run_page, experiment_id, run_id)

    # -- request helpers ---------------------------------------------------------------------------
    def _create_headers(self, retry_token: str | None) -> dict[str, str] | None:
        if retry_token and self.uses_retry_token:
            return {"opc-retry-token": retry_token[:64]}
        return None

    def _post_create(self, path: str, body: dict[str, Any], retry_token: str | None) -> ApiResponse:
        # Without a retry token a create is not safe to resend: idempotent=False (a token makes it safe).
        headers = self._create_headers(retry_token)
        return self.request(ApiRequest("POST", path, json=body, headers=headers, idempotent=headers is not None))

    def _get_or_none(self, req: ApiRequest) -> ApiResponse | None:
        try:
            return self.request(req)
        except ServiceError as exc:
            if is_not_found(exc):
                return None
            raise

    # -- experiments -------------------------------------------------------------------------------
    def get_experiment_by_name(self, name: str) -> dict[str, Any] | None:
        response = self._get_or_none(
            ApiRequest("GET", f"{self.tracking_api}/experiments/get-by-name", params={"experiment_name": name})
        )
        return None if response is None else response.json_object("experiment", require=("experiment_id",))

    def create_experiment(self, name: str, retry_token: str | None = None) -> str:
        """Create an experiment; returns its id."""
        from airflow_provider_modelreg.models.base import validate_request
        from airflow_provider_modelreg.models.mlflow import CreateExperimentRequest

        body = validate_request(CreateExperimentRequest, {"name": name}).wire()
        response = self._post_create(f"{self.tracking_api}/experiments/create", body, retry_token)
        return str(response.json_object(require=("experiment_id",))["experiment_id"])

    def _find_or_create(
        self,
        what: str,
        find: Callable[[], dict[str, Any] | None],
        create: Callable[[], dict[str, Any]],
        use: str = "using it",
    ) -> tuple[dict[str, Any], bool]:
        """(resource, created) for a uniquely named resource. A create whose answer was lost (dropped
        connection, 5xx) is looked up before it is sent again, within this call; a concurrent create
        by someone else (already exists) is not an error.

        Such a resource is shared by name (every run of an experiment's DAGs logs to it), not made for one
        task instance: one that exists is logged as such ("Experiment 'x' exists; logging to it"), never as
        an earlier try's resource."""
        from airflow_provider_modelreg.idempotency import create_once

        def create_or_adopt() -> dict[str, Any] | None:
            try:
                return create()
            except ServiceError as exc:
                if not is_already_exists(exc):
                    raise
                self.log.info("%s was created concurrently; using it", what)
                if (found := find()) is None:
                    raise
                return {**found, "_adopted": True}

        resource, created = create_once(
            find=find,
            create=create_or_adopt,
            retry=self.client.retry,
            logger=self.log,
            found_message=f"{what} exists; {use}",
        )
        if resource.pop("_adopted", False):
            created = False
        return resource, created

    def get_or_create_experiment(self, name: str, retry_token: str | None = None) -> dict[str, Any]:
        """The experiment named ``name``, created when missing; a concurrent create or a lost answer to
        the create is not an error."""
        experiment, _created = self._find_or_create(
            f"Experiment {name!r}",
            lambda: self.get_experiment_by_name(name),
            lambda: {"experiment_id": self.create_experiment(name, retry_token), "name": name},
            use="logging to it",
        )
        return experiment

    # -- runs ----------------------------------------------------------------------------------------
    def create_run(self, request: CreateRunRequest, retry_token: str | None = None) -> dict[str, Any]:
        response = self._post_create(f"{self.tracking_api}/runs/create", request.wire(), retry_token)
        return self._run(response)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._run(self.request(read_run({"api": self.tracking_api, "run_id": run_id})))

    @staticmethod
    def _run(response: ApiResponse) -> dict[str, Any]:
        run = response.json_object("run", require=("info",))
        if not isinstance(run["info"], dict) or not run["info"].get("run_id"):
            raise response.invalid("expected a run whose info has a run_id")
        return run

    def update_run(self, request: UpdateRunRequest) -> dict[str, Any]:
        """Set status, end time or name (the status is validated by the model: a server ignores a bad one)."""
        # runs/update sets fields to given values: resending it is harmless.
        data = self.request(
            ApiRequest("POST", f"{self.tracking_api}/runs/update", json=request.wire(), idempotent=True)
        ).data
        return data.get("run_info", data) if isinstance(data, dict) else {}

    def set_run_status(self, run_id: str, status: str, end_time: int | None = None) -> dict[str, Any]:
        from airflow_provider_modelreg.models.base import validate_request
        from airflow_provider_modelreg.models.mlflow import UpdateRunRequest, now_ms

        if end_time is None and status in ("FINISHED", "FAILED", "KILLED"):
            end_time = now_ms()
        return self.update_run(
            validate_request(UpdateRunRequest, {"run_id": run_id, "status": status, "end_time": end_time})
        )

    def log_batch(self, request: LogBatchRequest) -> int:
        """Log metrics, params and tags in as many calls as MLflow's per-call limits need; returns the count.

        Logging the same param value, tag or metric point again is harmless, so each call may be resent.
        """
        calls = 0
        for body in request.chunks():
            self.request(ApiRequest("POST", f"{self.tracking_api}/runs/log-batch", json=body, idempotent=True))
            calls += 1
        return calls

    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str | None = None,
        max_results: int = SEARCH_PAGE_SIZE,
        order_by: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching the filter, following page tokens until ``max_results`` runs are read."""
        runs: list[dict[str, Any]] = []
        for page in self._pages(
            lambda token: ApiRequest(
                "POST",
                f"{self.tracking_api}/runs/search",
                json={
                    k: v
                    for k, v in {
                        "experiment_ids": experiment_ids,
                        "filter": filter_string,
                        "max_results": min(max_results - len(runs), SEARCH_PAGE_SIZE),
                        "order_by": order_by,
                        "page_token": token,
                    }.items()
                    if v is not None
                },
                idempotent=True,  # a search reads only
            )
        ):
            runs.extend(page.get("runs", []))
            if len(runs) >= max_results:
                break
        return runs[:max_results]

    def find_run_by_tag(self, experiment_id: str, key: str, value: str) -> dict[str, Any] | None:
        """The oldest active run of the experiment tagged ``key=value``."""
        runs = self.search_runs(
            [experiment_id],
            f"tags.`{key}` = {quote_filter_value(value)}",
            max_results=100,
            order_by=["attributes.start_time ASC"],
        )
        # Deterministic among overlapping tries: the earliest start, then the smallest run id.
        return min(runs, key=lambda r: (int(r["info"].get("start_time") or 0), str(r["info"]["run_id"])), default=None)

    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted (searches no longer find it); resending is harmless."""
        self.request(ApiRequest("POST", f"{self.tracking_api}/runs/delete", json={"run_id": run_id}, idempotent=True))

    # -- registered models and versions -------------------------------------------------------------
    def get_registered_model(self, name: str) -> dict[str, Any] | None:
        response = self._get_or_none(
            ApiRequest("GET", f"{self.registry_api}/registered-models/get", params={"name": name})
        )
        return None if response is None else response.json_object("registered_model")

    def create_registered_model(
        self, request: CreateRegisteredModelRequest, retry_token: str | None = None
    ) -> dict[str, Any]:
        response = self._post_create(f"{self.registry_api}/registered-models/create", request.wire(), retry_token)
        return response.json_object("registered_model") if response.data else {"name": request.name}

    def ensure_registered_model(
        self, request: CreateRegisteredModelRequest, retry_token: str | None = None
    ) -> tuple[dict[str, Any], bool]:
        """(registered model, created). A model created concurrently by someone else, or a lost answer
        to the create, is not an error."""
        return self._find_or_create(
            f"Registered model {request.name!r}",
            lambda: self.get_registered_model(request.name),
            lambda: self.create_registered_model(request, retry_token),
            use="adding to it",
        )

    def create_model_version(
        self, request: CreateModelVersionRequest, retry_token: str | None = None
    ) -> dict[str, Any]:
        response = self._post_create(f"{self.registry_api}/model-versions/create", request.wire(), retry_token)
        return response.json_object("model_version", require=("name", "version"))

    def get_model_version(self, name: str, version: str | int) -> dict[str, Any]:
        ref = {"api": self.registry_api, "name": name, "version": str(version)}
        return self.request(read_model_version(ref)).json_object("model_version", require=("name", "version"))

    def search_model_versions(self, filter_string: str, max_results: int = SEARCH_PAGE_SIZE) -> list[dict[str, Any]]:
        versions: list[dict[str, Any]] = []
        for page in self._pages(
            lambda token: ApiRequest(
                "GET",
                f"{self.registry_api}/model-versions/search",
                params={"filter": filter_string, "max_results": SEARCH_PAGE_SIZE, "page_token": token},
            )
        ):
            versions.extend(page.get("model_versions", []))
            if len(versions) >= max_results:
                break
        return versions[:max_results]

    def find_model_version_by_tag(self, name: str, key: str, value: str) -> dict[str, Any] | None:
        """The lowest version of ``name`` tagged ``key=value``: what this task instance registered.

        Version numbers are given by the server in creation order, so among overlapping tries the
        lowest is the first made, and every try settles on the same one. The tag is matched here too.
        """
        filter_string = f"{name_filter(name)} and tags.`{key}` = {quote_filter_value(value)}"
        matches = [
            v
            for v in self.search_model_versions(filter_string)
            if v.get("name") == name
            and any(t.get("key") == key and t.get("value") == value for t in v.get("tags") or [])
        ]
        return min(matches, key=lambda v: int(v.get("version", 0))) if matches else None

    def delete_model_version(self, name: str, version: str | int) -> None:
        self.request(
            ApiRequest(
                "DELETE",
                f"{self.registry_api}/model-versions/delete",
                json={"name": name, "version": str(version)},
                idempotent=True,
            )
        )

    def _pages(self, build: Callable[[str | None], ApiRequest]) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            response = self.request(build(token))
            page = response.json_object() if response.data is not None else {}
            yield page
            token = page.get("next_page_token")
            if not token:
                return


class OCIDataPlatformMlflowHook(MlflowHook, OCIBaseHook):
    """OCI AI Data Platform's MLflow-compatible MLOps API, with OCI request signing.

    Connection extras: the OCI credential fields, ``ai_data_platform_id``, ``workspace_key`` (needed for
    experiments and runs, which are workspace-scoped) and an optional ``dh_user_principal``. The host,
    when set, overrides ``https://datalake.{region}.oci.oraclecloud.com``.

    :param conn_id: an ``oci_aidp`` connection (default ``oci_aidp_default``).
    """

    conn_type = "oci_aidp"
    default_conn_name = "oci_aidp_default"
    hook_name = "OCI AI Data Platform (MLflow)"
    service = "OCI AI Data Platform"
    endpoint_template = AIDP_ENDPOINT_TEMPLATE
    uses_retry_token = True

    @property
    def server_rules(self) -> MlflowServerRules:  # type: ignore[override]
        """The seed page's rules (registered model names 1..255, model-version tag values at most 8000)."""
        from airflow_provider_modelreg.models.mlflow import AIDP_RULES

        return AIDP_RULES

    @classmethod
    def client_from_connection(cls, conn: Connection, retry: RetryPolicy | None = None) -> ServiceClient:
        client = super(MlflowHook, cls).client_from_connection(conn, retry)  # OCIBaseHook's: signing
        principal = connection_extras(conn).get("dh_user_principal")
        if principal:
            # Set before the first request, so the lazily built httpx clients carry it.
            client.headers["dh-user-principal"] = str(principal)
        return client

    @classmethod
    def api_prefixes(cls, conn: Connection) -> tuple[str, str]:
        extras = connection_extras(conn)
        platform = extras.get("ai_data_platform_id")
        if not platform:
            raise ValueError(f"connection {conn.conn_id!r}: set ai_data_platform_id")
        root = api_path(f"/{AIDP_API_VERSION}/aiDataPlatforms/{{}}", platform)
        workspace = extras.get("workspace_key")
        # The registry is platform-scoped; tracking needs a workspace (checked when a tracking call is made).
        tracking = api_path(f"{root}/workspaces/{{}}/mlops/api/2.0/mlflow", workspace) if workspace else ""
        return tracking, f"{root}/mlops/api/2.0/mlflow"

    @property
    def tracking_api(self) -> str:
        if not self._prefixes[0]:
            raise ValueError(f"connection {self.conn_id!r}: set workspace_key (experiments and runs are per workspace)")
        return self._prefixes[0]

    def probe(self) -> ApiRequest:
        # The registry needs no workspace, so a connection without one can still be tested.
        return ApiRequest("GET", f"{self.registry_api}/registered-models/search", params={"max_results": 1})

    @classmethod
    def run_page_template(cls, conn: Connection, client: ServiceClient) -> str | None:
        # The endpoint serves the API only (its root plus MLflow's UI route is a 404), and the Workbench's
        # run pages have no documented address: a link only where the connection's ``ui_url`` gives one.
        ui_url = connection_extras(conn).get("ui_url")
        return run_url_template(ui_url) if ui_url else None


def mlflow_hook_class(conn_type: str | None) -> type[MlflowHook]:
    """The hook class for a connection type (``oci_aidp`` or anything else: a plain MLflow server)."""
    return OCIDataPlatformMlflowHook if conn_type == OCIDataPlatformMlflowHook.conn_type else MlflowHook


def mlflow_hook(conn_id: str, retry: RetryPolicy | None = None) -> MlflowHook:
    """The hook matching the connection's type, so operators work with either flavour."""
    conn = ModelRegHook.get_connection(conn_id)
    hook = mlflow_hook_class(conn.conn_type)(conn_id=conn_id, retry=retry)
    hook.__dict__["connection"] = conn  # read once
    return hook


# -- aliases (issue 17) -------------------------------------------------------------------------------
# MLflow's registry aliases (``champion``, ``challenger``, ...), which replace the stages MLflow deprecated
# in 2.9. Set is POST and delete is DELETE on ``registered-models/alias`` with a JSON body, as MlflowClient
# sends them. Oracle's MLOpsClient 5.1.1 has no alias operations; the AI Data Platform flavour is served at
# MLflow's suffixes and methods (unconfirmed for the real platform, as the sandbox says). Both calls set a
# value to a given state, so resending them is harmless.
def validate_alias(alias: Any, *, to_set: bool = False) -> str:
    """The alias, or InvalidRequest naming the rule (MLflow's: letters, digits, ``_`` and ``-``, 1..255;
    ``latest`` and ``v<digits>`` are reserved names a server refuses to set)."""
    from airflow_provider_modelreg.models.base import InvalidRequest
    from airflow_provider_modelreg.models.mlflow import alias_problem, alias_reserved

    if not isinstance(alias, str):
        raise InvalidRequest(f"alias: {alias!r} must be a string; nothing was sent")
    if (problem := alias_problem(alias)) is not None:
        raise InvalidRequest(f"alias: {alias!r} {problem} (MLflow's alias rule); nothing was sent")
    if to_set and alias_reserved(alias):
        raise InvalidRequest(f"alias: {alias!r} is reserved by MLflow ('latest', 'v<n>'); nothing was sent")
    return alias


def aliases_of(registered_model: Mapping[str, Any]) -> dict[str, str]:
    """``{alias: version}`` of a registered model as ``registered-models/get`` answers it."""
    return {
        str(a["alias"]): str(a["version"])
        for a in registered_model.get("aliases") or []
        if isinstance(a, Mapping) and a.get("alias") is not None
    }


def get_aliases(hook: MlflowHook, name: str) -> dict[str, str]:
    """``{alias: version}`` of the registered model ``name`` (ServiceError 404 when it does not exist)."""
    model = hook.request(
        ApiRequest("GET", f"{hook.registry_api}/registered-models/get", params={"name": name})
    ).json_object("registered_model")
    return aliases_of(model)


def get_alias_holder(hook: MlflowHook, name: str, alias: str) -> dict[str, Any] | None:
    """The model version holding ``alias``, or None when no version holds it."""
    version = get_aliases(hook, name).get(validate_alias(alias))
    return None if version is None else hook.get_model_version(name, version)


def set_alias(hook: MlflowHook, name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` at ``version`` of ``name`` (moving it from any other version)."""
    body = {"name": name, "alias": validate_alias(alias, to_set=True), "version": str(version)}
    hook.request(ApiRequest("POST", f"{hook.registry_api}/registered-models/alias", json=body, idempotent=True))


def delete_alias(hook: MlflowHook, name: str, alias: str) -> bool:
    """Remove ``alias`` from ``name``; False (nothing deleted) when no version held it."""
    if validate_alias(alias) not in get_aliases(hook, name):
        return False
    body = {"name": name, "alias": alias}
    hook.request(ApiRequest("DELETE", f"{hook.registry_api}/registered-models/alias", json=body, idempotent=True))
    return True
