"""MLflow operators: log a run, register a model version. Each works with an ``mlflow`` connection (any
MLflow tracking server) or an ``oci_aidp`` connection (OCI AI Data Platform); the connection's type picks
the flavour."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_modelreg.hooks.mlflow import (
    IDEMPOTENCY_TAG,
    MODEL_VERSION_LIFECYCLE,
    RUN_LIFECYCLE,
    MlflowHook,
    delete_alias,
    get_alias_holder,
    get_aliases,
    mlflow_hook,
    set_alias,
    validate_alias,
)
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.idempotency import create_once, idempotency_key
from airflow_provider_modelreg.lineage import DatasetName, ModelLineage, service_dataset, unique, uri_dataset
from airflow_provider_modelreg.links.mlflow import MlflowRunLink
from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.mlflow import (
    CreateExperimentRequest,
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
    LogBatchRequest,
    server_context,
    tag_list,
)
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator
from airflow_provider_modelreg.spec import at
from airflow_provider_modelreg.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

# The run id is not known when the log is validated (before anything is sent): a placeholder stands in.
_PENDING_RUN = "pending"


@dataclass(frozen=True)
class RunPlan:
    """Everything the run operator will send, validated before the first call."""

    experiment_name: str
    run_name: str
    run_tags: list[dict[str, str]]
    log: LogBatchRequest


def _pull(context: Context, task_id: str, xcom_key: str, what: str) -> Mapping[str, Any]:
    value = context["ti"].xcom_pull(task_ids=task_id, key=xcom_key)
    if isinstance(value, str):  # an XCom pushed as JSON text
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            f"{what}: XCom {xcom_key!r} of task {task_id!r} is {type(value).__name__}, not a mapping; nothing was sent"
        )
    return value


def _select(
    source: Mapping[str, Any], keys: Sequence[str] | Mapping[str, str] | None, what: str, task_id: str
) -> dict[str, Any]:
    """``keys``: names to take as they are, or ``{logged name: dotted path in the XCom value}``; None: all
    top-level entries (for metrics, the numeric ones)."""
    if keys is None:
        if what == "metrics":
            return {k: v for k, v in source.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        return {k: v for k, v in source.items() if isinstance(v, (str, int, float, bool))}
    mapping = dict(keys) if isinstance(keys, Mapping) else {k: k for k in keys}
    picked = {}
    for name, path in mapping.items():
        value = at(path)(source)
        if value is None:
            raise InvalidRequest(f"{what}: {path!r} is not in the XCom of task {task_id!r}; nothing was sent")
        picked[name] = value
    return picked


def _metric_points(metrics: Any, step: int, timestamp: int | None) -> list[dict[str, Any]]:
    """Metrics as ``{name: value}``, ``{name: {"value", "step", "timestamp"}}``, ``{name: [points]}`` or a
    list of ``{"key", "value", "step", "timestamp"}``; defaults fill step and timestamp."""
    points: list[dict[str, Any]] = []
    items: list[tuple[str | None, Any]] = (
        list(metrics.items()) if isinstance(metrics, Mapping) else [(None, m) for m in metrics or []]
    )
    for name, value in items:
        for point in value if isinstance(value, list) else [value]:
            fields = dict(point) if isinstance(point, Mapping) else {"value": point}
            if name is not None:
                fields.setdefault("key", name)
            fields.setdefault("step", step)
            if timestamp is not None:
                fields.setdefault("timestamp", timestamp)
            points.append(fields)
    return points


def _key_values(values: Any) -> list[dict[str, Any]]:
    return tag_list(values) or []


def mlflow_namespace(hook: MlflowHook) -> str:
    """The registry's lineage namespace: the server (open-source MLflow) or the platform's MLOps root (AIDP)."""
    return hook.client.base_url.rstrip("/") + hook.registry_api.removesuffix("/api/2.0/mlflow")


def mlflow_run_dataset(hook: MlflowHook, run_id: str) -> DatasetName:
    # Run ids are unique per server: the run operator's output and a version's input name the same dataset.
    return service_dataset(mlflow_namespace(hook), f"runs/{run_id}")


class MlflowCreateRunOperator(CreateAndWaitOperator):
    """Log an MLflow run: find or create the experiment, create a run named and tagged after the task
    instance, log params, metrics and tags, and close it ``FINISHED`` (or leave it open).

    Values are given directly (templated) or pulled from an upstream task's XCom: for example
    ``metrics_from="train_vision", metric_keys={"precision": "precision", "recall": "recall"}``, or
    ``metrics={"precision": "{{ ti.xcom_pull('train')['precision'] }}"}``. Everything is validated before
    the first call. When logging fails the run is marked ``FAILED`` and the error re-raised; when the task
    is killed, ``KILLED``. A retried task finds its run by the ``airflow.idempotency_key`` tag and reuses
    it, never creating a second one; overlapping tries settle on one run (the loser's is deleted). A retry
    whose param value changed is refused before the earlier run is touched. Returns ``run_id``,
    ``experiment_id``, ``run_name``, ``status``,
    ``run_url`` (the run's page, None where there is none: see links/mlflow.py) and the run's ``info``.

    :param experiment_name: experiment to log to (created when missing).
    :param run_name: run name (default ``<dag_id>.<task_id>[<map index>].<run_id>``).
    :param run_params: MLflow params, ``{name: value}`` or a list of ``{"key", "value"}``; values become
        strings (named so because ``params`` is Airflow's own DAG-params argument); a value over 6000
        characters is refused: MLflow would silently truncate it to 6000.
    :param metrics: ``{name: value}``, ``{name: {"value", "step", "timestamp"}}``, ``{name: [points]}`` or a
        list of ``{"key", "value", "step", "timestamp"}``.
    :param tags: ``{name: value}`` or a list of ``{"key", "value"}``; a value over 8000 characters is refused:
        MLflow would silently truncate it to 8000.
    :param metrics_from: task id whose XCom holds metrics (a mapping).
    :param metric_keys: names to take from that XCom, or ``{metric name: dotted path}``; default: every
        numeric top-level entry.
    :param params_from: task id whose XCom holds params.
    :param param_keys: like ``metric_keys`` (default: every scalar top-level entry).
    :param tags_from: task id whose XCom holds tags.
    :param tag_keys: like ``metric_keys`` (default: every scalar top-level entry).
    :param xcom_key: XCom key read by ``*_from`` (default ``return_value``).
    :param step: default step of metrics (default 0).
    :param metric_timestamp: default timestamp of metrics, epoch milliseconds (default: now).
    :param close_run: close the run ``FINISHED`` (default); false leaves it ``RUNNING`` for later tasks.
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    :param wait_for_completion: with ``close_run=False``, wait until something else ends the run
        (``FINISHED`` succeeds; ``FAILED``, ``KILLED``, ``INTERNAL_ERROR`` fail). Default false.
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between status reads while waiting.
    :param wait_timeout: seconds before the wait fails.
    """

    hook_class = MlflowHook
    lifecycle = RUN_LIFECYCLE
    operator_extra_links = (MlflowRunLink(),)
    template_fields: Sequence[str] = (
        "experiment_name",
        "run_name",
        "run_params",
        "metrics",
        "tags",
        "metrics_from",
        "metric_keys",
        "params_from",
        "param_keys",
        "tags_from",
        "tag_keys",
        "xcom_key",
        "conn_id",
    )
    template_fields_renderers = {"run_params": "json", "metrics": "json", "tags": "json"}

    def __init__(
        self,
        *,
        experiment_name: str,
        run_name: str | None = None,
        run_params: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        metrics: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        tags: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        metrics_from: str | None = None,
        metric_keys: Sequence[str] | Mapping[str, str] | None = None,
        params_from: str | None = None,
        param_keys: Sequence[str] | Mapping[str, str] | None = None,
        tags_from: str | None = None,
        tag_keys: Sequence[str] | Mapping[str, str] | None = None,
        xcom_key: str = "return_value",
        step: int = 0,
        metric_timestamp: int | None = None,
        close_run: bool = True,
        wait_for_completion: bool = False,
        poll_interval: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(wait_for_completion=wait_for_completion, poll_interval=poll_interval, **kwargs)
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.run_params = run_params
        self.metrics = metrics
        self.tags = tags
        self.metrics_from = metrics_from
        self.metric_keys = metric_keys
        self.params_from = params_from
        self.param_keys = param_keys
        self.tags_from = tags_from
        self.tag_keys = tag_keys
        self.xcom_key = xcom_key
        self.step = step
        self.metric_timestamp = metric_timestamp
        self.close_run = close_run
        self._run_id: str | None = None
        self._killed = False

    @cached_property
    def hook(self) -> MlflowHook:
        return mlflow_hook(self.conn_id)

    # -- validate everything first ------------------------------------------------------------------
    def build_request(self, context: Context) -> RunPlan:
        ti = context["ti"]
        metrics = _metric_points(self.metrics, self.step, self.metric_timestamp)
        params = _key_values(self.run_params)
        tags = _key_values(self.tags)
        if self.metrics_from:
            pulled = _select(
                _pull(context, self.metrics_from, self.xcom_key, "metrics"),
                self.metric_keys,
                "metrics",
                self.metrics_from,
            )
            metrics += _metric_points(pulled, self.step, self.metric_timestamp)
        if self.params_from:
            pulled = _select(
                _pull(context, self.params_from, self.xcom_key, "params"), self.param_keys, "params", self.params_from
            )
            params += _key_values(pulled)
        if self.tags_from:
            pulled = _select(
                _pull(context, self.tags_from, self.xcom_key, "tags"), self.tag_keys, "tags", self.tags_from
            )
            tags += _key_values(pulled)
        log = validate_request(
            LogBatchRequest, {"run_id": _PENDING_RUN, "metrics": metrics, "params": params, "tags": tags}
        )
        run_tags = {
            IDEMPOTENCY_TAG: idempotency_key(context),
            "airflow.dag_id": ti.dag_id,
            "airflow.task_id": ti.task_id,
            "airflow.run_id": ti.run_id,
            "mlflow.source.type": "JOB",
            "mlflow.source.name": f"airflow:{ti.dag_id}.{ti.task_id}",
        }
        map_index = getattr(ti, "map_index", None)
        if map_index is not None and map_index >= 0:
            run_tags["airflow.map_index"] = str(map_index)
        map_index = getattr(ti, "map_index", -1)
        mapped = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
        run_name = self.run_name or f"{ti.dag_id}.{ti.task_id}{mapped}.{ti.run_id}"
        # Validate the create body too (the experiment id is filled in later).
        create = validate_request(
            CreateRunRequest, {"experiment_id": "0", "run_name": run_name, "tags": tag_list(run_tags)}
        )
        if not str(self.experiment_name or "").strip():
            raise InvalidRequest("experiment_name: must not be empty; nothing was sent")
        validate_request(CreateExperimentRequest, {"name": self.experiment_name})  # at most 500 characters
        try:  # the run's link, checked before anything is sent
            run_page = self.hook.run_page
        except ValueError as exc:
            raise InvalidRequest(f"connection {self.conn_id!r}: {exc}; nothing was sent") from None
        if run_page is None:
            self.log.info(
                "The run gets no link: the endpoint serves no run pages; set the connection's ui_url to the "
                "address of a run's page, with {experiment_id} and {run_id}"
            )
        return RunPlan(self.experiment_name, run_name, [t.wire() for t in create.tags], log)

    # -- create once, log, close -------------------------------------------------------------------
    def create(self, context: Context, plan: RunPlan) -> dict[str, Any]:
        hook = self.hook
        key = idempotency_key(context)
        experiment = hook.get_or_create_experiment(plan.experiment_name, retry_token=f"{key}-experiment")
        experiment_id = str(experiment["experiment_id"])
        try_number = getattr(context["ti"], "try_number", 1)

        def new_run() -> dict[str, Any]:
            request = validate_request(
                CreateRunRequest,
                {"experiment_id": experiment_id, "run_name": plan.run_name, "tags": plan.run_tags},
            )
            # A token per try: the body's start_time differs between tries, and a reused token with
            # another body is refused; across tries the run is found by its tag instead.
            return hook.create_run(request, retry_token=f"{key}-run-{try_number}")

        started = time.monotonic()
        run, created = create_once(
            find=lambda: hook.find_run_by_tag(experiment_id, IDEMPOTENCY_TAG, key),
            create=new_run,
            retry=hook.client.retry,
            logger=self.log,
        )
        if created:
            run, created = self._settle_run(experiment_id, key, run)
        if created:
            # Runs carry no server-assigned order (start_time is the client's): an overlapping try whose
            # create was in flight beside ours may not have been visible yet. Its create was sent no later
            # than ours, so look once more after twice our own round trip, and yield if it wins.
            time.sleep(min(2.0, max(0.05, 2 * (time.monotonic() - started))))
            run, created = self._settle_run(experiment_id, key, run)
        run_id = str(run["info"]["run_id"])
        self._run_id = run_id
        MlflowRunLink.persist(
            context, url=hook.run_url(experiment_id, run_id), experiment_id=experiment_id, run_id=run_id
        )
        self.log.info("%s MLflow run %s in experiment %s", "Created" if created else "Reusing", run_id, experiment_id)
        if not created:
            self._refuse_changed_params(run, plan.log)
        try:
            if not created and run["info"].get("status") != "RUNNING":
                hook.set_run_status(run_id, "RUNNING")  # a retry reopens the run an earlier try closed
            self.log_to_run(plan.log.model_copy(update={"run_id": run_id}))
            if self.close_run:
                hook.set_run_status(run_id, "FINISHED")
        except BaseException as exc:
            if not self._killed:  # on_kill already said KILLED: do not overwrite it with FAILED
                self._mark(run_id, "FAILED", exc)
            raise
        return hook.get_run(run_id)

    def _settle_run(self, experiment_id: str, key: str, mine: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Overlapping tries of one task instance may each have created a run: all settle on the one
        :meth:`MlflowHook.find_run_by_tag` picks (earliest start, then smallest id); a try whose run lost
        deletes it."""
        winner = self.hook.find_run_by_tag(experiment_id, IDEMPOTENCY_TAG, key)
        mine_id = str(mine["info"]["run_id"])
        if winner is None or str(winner["info"]["run_id"]) == mine_id:
            return mine, True
        self.log.warning(
            "Another try of this task instance made run %s at the same time; deleting %s and using that one",
            winner["info"]["run_id"],
            mine_id,
        )
        try:
            self.hook.delete_run(mine_id)
        except ServiceError as exc:
            self.log.warning("Could not delete the duplicate run %s: %s", mine_id, exc)
        return self.hook.get_run(str(winner["info"]["run_id"])), False

    def _refuse_changed_params(self, run: dict[str, Any], log: LogBatchRequest) -> None:
        """MLflow params are logged once: a retried or cleared task whose param changed would be refused
        half-way, after reopening the earlier run. Refuse first, naming the param; the run stays as it was."""
        logged = {p.get("key"): p.get("value") for p in (run.get("data") or {}).get("params") or []}
        changed = [p for p in log.params if p.key in logged and logged[p.key] != p.value]
        if changed:
            detail = ", ".join(f"{p.key!r} was {logged[p.key]!r}, now {p.value!r}" for p in changed)
            raise AirflowFailException(
                f"run_params: this task instance's run {run['info']['run_id']} already has {detail}; MLflow "
                "params cannot change (the run is left as it was; use a new DAG run or another param name)"
            )

    def log_to_run(self, log: LogBatchRequest) -> None:
        """Send the validated params, metrics and tags (split to the per-call limits)."""
        if log.is_empty():
            return
        calls = self.hook.log_batch(log)
        self.log.info(
            "Logged %d metrics, %d params and %d tags in %d call(s)",
            len(log.metrics),
            len(log.params),
            len(log.tags),
            calls,
        )

    def _mark(self, run_id: str, status: str, cause: BaseException | None = None) -> None:
        try:
            self.hook.set_run_status(run_id, status)
            self.log.warning("Marked MLflow run %s %s%s", run_id, status, f" ({type(cause).__name__})" if cause else "")
        except (ServiceError, ValueError) as exc:  # the original failure matters more than this one
            self.log.warning("Could not mark MLflow run %s %s: %s", run_id, status, exc)

    def on_kill(self) -> None:
        # The run is this task's from the moment it exists, before create() returns (it logs inside).
        if self._run_id and self._owned_ref is None:
            self._owned_ref = {"api": self.hook.tracking_api, "run_id": self._run_id}
        super().on_kill()  # ends the run KILLED (RUN_LIFECYCLE's cancel) when the task was marked failed
        self._killed = self._cancelled

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"api": self.hook.tracking_api, "run_id": str(resource["info"]["run_id"])}

    def lineage(self, resource: dict[str, Any]) -> ModelLineage:
        info = resource.get("info", resource)
        run_id = str(info["run_id"])
        return ModelLineage(
            output=mlflow_run_dataset(self.hook, run_id),
            service=self.hook.conn_type,
            resource_id=run_id,
            state=info.get("status"),
        )

    def to_xcom(self, resource: dict[str, Any]) -> dict[str, Any]:
        info = resource.get("info", resource)
        run_id, experiment_id = str(info.get("run_id")), str(info.get("experiment_id"))
        return {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "run_name": info.get("run_name"),
            "status": info.get("status"),
            "run_url": self.hook.run_url(experiment_id, run_id),
            "info": info,
        }


class MlflowCreateModelVersionOperator(CreateAndWaitOperator):
    """Register a model version from ``source`` (and ``run_id``); wait until it is ``READY``.

    The registered model is created when missing (a concurrent create by another task is not an error).
    The seed page's limits and the rules of the server in hand (MLflow 2.x or 3.x, read from the server's
    ``GET /version``, or the AI Data Platform) are checked before anything is sent. The version is tagged
    ``airflow.idempotency_key`` (one tag of the 20): a retried task returns the version its first try made,
    overlapping tries settle on the lowest, and a later DAG run registering the same source makes a new one.
    ``FAILED_REGISTRATION`` fails
    the task with the service's ``status_message``. Returns the model version (plain JSON).

    :param name: registered model name: not empty; on MLflow 3 not blank, no ``/`` or ``:``, no ``..``
        path parts; at most 255 characters on the AI Data Platform.
    :param source: URI of the model artifacts (1..500), e.g. ``runs:/<run id>/model``.
    :param run_id: id of the run that made the model (1..32).
    :param model_id: logged model id (at most 36).
    :param run_link: link to the run (at most 500).
    :param description: version description (at most 5000).
    :param tags: ``{key: value}`` or a list of ``{"key", "value"}`` (at most 19; key 1..250 by MLflow's key
        rule; value ≤ 5000 on MLflow 2.x, ≤ 100,000 on MLflow 3.x, ≤ 8000 on the AI Data Platform).
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    :param wait_for_completion: wait until ``READY`` (default true).
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between status reads (default 3, as MLflow's own client).
    :param wait_timeout: seconds before the wait fails (default 300, as MLflow's own client).
    """

    hook_class = MlflowHook
    lifecycle = MODEL_VERSION_LIFECYCLE
    template_fields: Sequence[str] = (
        "name",
        "source",
        "run_id",
        "model_id",
        "run_link",
        "description",
        "tags",
        "conn_id",
    )

    def __init__(
        self,
        *,
        name: str,
        source: str,
        run_id: str | None = None,
        model_id: str | None = None,
        run_link: str | None = None,
        description: str | None = None,
        tags: Mapping[str, Any] | list[dict[str, Any]] | None = None,
        poll_interval: float = 3.0,
        wait_timeout: float = 300.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poll_interval=poll_interval, wait_timeout=wait_timeout, **kwargs)
        self.name = name
        self.source = source
        self.run_id = run_id
        self.model_id = model_id
        self.run_link = run_link
        self.description = description
        self.tags = tags

    @cached_property
    def hook(self) -> MlflowHook:
        return mlflow_hook(self.conn_id)

    def build_request(self, context: Context) -> CreateModelVersionRequest:
        # Templates render a missing upstream value as "" or "None": treat both as not given. Ids are
        # strings even when native rendering made a number of them.
        fields = {
            "name": self.name,
            "source": self.source,
            "run_id": self.run_id,
            "model_id": self.model_id,
            "run_link": self.run_link,
            "description": self.description,
        }
        given = {k: str(v) for k, v in fields.items() if v is not None and str(v) not in ("", "None")}
        # The version belongs to its task instance: found again by this tag, never by its source (a
        # fixed source registered by a later DAG run is a new version).
        tags = [t for t in tag_list(self.tags) or [] if t.get("key") != IDEMPOTENCY_TAG]
        tags.append({"key": IDEMPOTENCY_TAG, "value": idempotency_key(context)})
        body = given | {"tags": tags}
        # What every server refuses first, without a request; then the rules of the server in hand (on
        # plain MLflow they are read once with GET /version), still before anything is created.
        validate_request(CreateModelVersionRequest, body)
        return validate_request(CreateModelVersionRequest, body, context=server_context(self.hook.server_rules))

    def create(self, context: Context, request: CreateModelVersionRequest) -> dict[str, Any]:
        hook = self.hook
        key = idempotency_key(context)
        _model, model_created = hook.ensure_registered_model(
            CreateRegisteredModelRequest(name=request.name), retry_token=f"{key}-registered-model"
        )
        if model_created:
            self.log.info("Created registered model %r", request.name)

        def find() -> dict[str, Any] | None:
            return hook.find_model_version_by_tag(request.name, IDEMPOTENCY_TAG, key)

        version, created = create_once(
            find=find,
            create=lambda: hook.create_model_version(request, retry_token=f"{key}-model-version"),
            retry=hook.client.retry,
            logger=self.log,
        )
        if created and (winner := find()) is not None and str(winner["version"]) != str(version["version"]):
            # An overlapping try of this task instance registered first: use its version, delete ours.
            self.log.warning(
                "Another try of this task instance registered version %s at the same time; deleting version %s",
                winner["version"],
                version["version"],
            )
            try:
                hook.delete_model_version(request.name, version["version"])
            except ServiceError as exc:
                self.log.warning("Could not delete the duplicate version %s: %s", version["version"], exc)
            version, created = winner, False
        self.log.info(
            "%s version %s of model %r (%s)",
            "Created" if created else "Reusing",
            version["version"],
            request.name,
            request.source,
        )
        return version

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"api": self.hook.registry_api, "name": resource["name"], "version": str(resource["version"])}

    def lineage(self, resource: dict[str, Any]) -> ModelLineage:
        source = str(resource.get("source") or self.source or "")
        run_id = resource.get("run_id") or self.run_id
        inputs: list[DatasetName | None] = []
        if source.startswith("runs:/"):
            # runs:/<run id>/<path>: the artifacts of that run on this server (the run's own dataset).
            inputs.append(mlflow_run_dataset(self.hook, source.removeprefix("runs:/").split("/", 1)[0]))
        elif source.startswith("models:/"):
            inputs.append(service_dataset(mlflow_namespace(self.hook), source.removeprefix("models:/")))
        elif source:
            inputs.append(uri_dataset(source))
        if run_id and str(run_id) not in ("", "None"):
            inputs.append(mlflow_run_dataset(self.hook, str(run_id)))
        return ModelLineage(
            output=service_dataset(mlflow_namespace(self.hook), f"models/{resource['name']}"),
            service=self.hook.conn_type,
            resource_id=f"{resource['name']}/{resource['version']}",
            version=str(resource["version"]),
            state=resource.get("status"),
            inputs=unique(inputs),
        )


# -- aliases and the champion/challenger gate (issue 17) --------------------------------------------------
# Kept apart from the create operators above: these change where an alias points, they create nothing.
class _AliasOperator(BaseOperator):
    """Shared by the alias operators: an ``mlflow`` or ``oci_aidp`` connection and the hook on it."""

    ui_color = "#e8f4fa"

    def __init__(self, *, name: str, alias: str, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.alias = alias
        self.conn_id = conn_id or MlflowHook.default_conn_name

    @cached_property
    def hook(self) -> MlflowHook:
        return mlflow_hook(self.conn_id)

    def _checked_name(self) -> str:
        name = "" if self.name is None else str(self.name)
        if name in ("", "None"):
            raise AirflowFailException(f"name: {self.name!r} must be a registered model name; nothing was sent")
        try:
            self.hook.server_rules.check_model_name(name)
        except ValueError as exc:
            raise AirflowFailException(f"name: {exc}; nothing was sent") from None
        return name


class MlflowSetAliasOperator(_AliasOperator):
    """Point a registered model's alias (``champion``, ``challenger``, ...) at a version.

    Idempotent: setting an alias to the version that holds it sends nothing. Returns
    ``{"name", "alias", "version", "previous"}`` (``previous``: the version that held it before, or None).

    :param name: registered model name.
    :param alias: 1..255 letters, digits, ``_`` or ``-`` (``latest`` and ``v<n>`` are reserved).
    :param version: the version to point the alias at.
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    """

    template_fields: Sequence[str] = ("name", "alias", "version", "conn_id")

    def __init__(self, *, version: str | int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version

    def execute(self, context: Context) -> dict[str, Any]:
        name = self._checked_name()
        try:
            alias = validate_alias(self.alias, to_set=True)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
        version = str(self.version)
        if not version.isdigit():
            raise AirflowFailException(f"version: {self.version!r} must be a version number; nothing was sent")
        previous = get_aliases(self.hook, name).get(alias)
        if previous == version:
            self.log.info("Alias %r of model %r already points at version %s", alias, name, version)
        else:
            set_alias(self.hook, name, alias, version)
            self.log.info("Alias %r of model %r now points at version %s (was %s)", alias, name, version, previous)
        return {"name": name, "alias": alias, "version": version, "previous": previous}


class MlflowDeleteAliasOperator(_AliasOperator):
    """Remove a registered model's alias; an alias no version holds is not an error.

    Returns ``{"name", "alias", "deleted", "previous"}``.

    :param name: registered model name.
    :param alias: the alias to remove.
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    """

    template_fields: Sequence[str] = ("name", "alias", "conn_id")

    def execute(self, context: Context) -> dict[str, Any]:
        name = self._checked_name()
        try:
            alias = validate_alias(self.alias)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
        previous = get_aliases(self.hook, name).get(alias)
        deleted = delete_alias(self.hook, name, alias) if previous is not None else False
        self.log.info(
            "Alias %r of model %r %s", alias, name, f"removed (was version {previous})" if deleted else "was not set"
        )
        return {"name": name, "alias": alias, "deleted": deleted, "previous": previous}


def compare_metrics(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    directions: Mapping[str, str],
    min_improvement: Mapping[str, float],
) -> tuple[bool, str]:
    """Promote when every named metric is at least its minimum improvement better (``max``: higher is
    better, ``min``: lower is better) and one of them is strictly better; the reason names each metric
    with the old and the new value."""
    if champion is None:
        return True, "no version holds the alias yet"
    parts, better, worse = [], False, False
    for metric, direction in directions.items():
        new = candidate[metric]
        old = champion.get(metric)
        if old is None:
            parts.append(f"{metric} {new:g} (the holder has none)")
            better = True
            continue
        gain = new - old if direction == "max" else old - new
        need = min_improvement.get(metric, 0.0)
        word = "higher" if direction == "max" else "lower"
        if gain >= need and gain > 0:
            better = True
            parts.append(f"{metric} {old:g} -> {new:g} ({word} is better, improved by {abs(gain):g})")
        elif gain >= need:
            parts.append(f"{metric} {old:g} -> {new:g} (unchanged)")
        else:
            worse = True
            shortfall = f"needs an improvement of at least {need:g}" if gain >= 0 else f"{word} is better"
            parts.append(f"{metric} {old:g} -> {new:g} ({shortfall})")
    return better and not worse, "; ".join(parts)


class MlflowChampionChallengerOperator(_AliasOperator):
    """Compare a new version's metrics with the alias holder's and promote it only when it is better.

    The metrics are read from each version's run. ``metrics`` names each metric and its direction
    (``{"f1": "max", "latency_ms": "min"}``); ``min_improvement`` is one number for all or a number per
    metric. The candidate is better when every metric improves by at least its minimum (and one
    strictly); no holder yet means promote. The reason (each metric, old and new value) is logged.
    Returns the decision (also pushed as XCom ``decision``), so a ``@task.branch`` can choose a path:
    ``{"promote", "reason", "name", "alias", "version", "champion_version", "candidate", "champion",
    "promoted"}``.

    :param name: registered model name.
    :param version: the candidate version.
    :param metrics: ``{metric: "max" | "min"}``.
    :param alias: the alias the winner holds (default ``champion``).
    :param min_improvement: the least gain that counts as better (default 0).
    :param promote: set the alias when the candidate wins (default true); false only decides.
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    """

    template_fields: Sequence[str] = ("name", "alias", "version", "metrics", "min_improvement", "conn_id")

    def __init__(
        self,
        *,
        version: str | int,
        metrics: Mapping[str, str],
        alias: str = "champion",
        min_improvement: float | Mapping[str, float] = 0.0,
        promote: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(alias=alias, **kwargs)
        self.version = version
        self.metrics = metrics
        self.min_improvement = min_improvement
        self.promote = promote

    def _rules(self) -> tuple[dict[str, str], dict[str, float]]:
        if not isinstance(self.metrics, Mapping) or not self.metrics:
            raise AirflowFailException('metrics: give {name: "max" | "min"} with at least one metric')
        directions = {}
        for metric, direction in self.metrics.items():
            if str(direction).lower() not in ("max", "min"):
                raise AirflowFailException(f"metrics: direction of {metric!r} is {direction!r}, not 'max' or 'min'")
            directions[str(metric)] = str(direction).lower()
        given = self.min_improvement
        if isinstance(given, Mapping):
            unknown = set(given) - set(directions)
            if unknown:
                raise AirflowFailException(f"min_improvement: {sorted(unknown)} are not among the metrics")
            minimum = {m: float(given.get(m, 0.0)) for m in directions}
        else:
            minimum = dict.fromkeys(directions, float(given))
        if any(v < 0 for v in minimum.values()):
            raise AirflowFailException("min_improvement: must be 0 or more")
        return directions, minimum

    def _run_metrics(self, version: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, float]:
        run_id = version.get("run_id")
        if not run_id:
            return {}
        data = self.hook.get_run(str(run_id)).get("data") or {}
        latest = {m["key"]: float(m["value"]) for m in data.get("metrics", []) if m.get("key") in wanted}
        return latest

    def execute(self, context: Context) -> dict[str, Any]:
        name = self._checked_name()
        try:
            alias = validate_alias(self.alias, to_set=self.promote)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
        directions, minimum = self._rules()
        version = str(self.version)
        if not version.isdigit():
            raise AirflowFailException(f"version: {self.version!r} must be a version number; nothing was sent")
        candidate_version = self.hook.get_model_version(name, version)
        candidate = self._run_metrics(candidate_version, list(directions))
        missing = [m for m in directions if m not in candidate]
        if missing:
            raise AirflowFailException(
                f"version {version} of model {name!r}: its run ({candidate_version.get('run_id')}) "
                f"has no metric {', '.join(map(repr, missing))}"
            )
        holder = get_alias_holder(self.hook, name, alias)
        champion = None if holder is None else self._run_metrics(holder, list(directions))
        holder_version = None if holder is None else str(holder["version"])
        if holder_version == version:
            promote, reason = False, f"version {version} already holds {alias!r}"
        else:
            promote, reason = compare_metrics(candidate, champion, directions, minimum)
        verdict = "promote" if promote else "keep"
        who = f"version {holder_version}" if holder_version else "no holder"
        self.log.info("Model %r: %s version %s over %s for alias %r: %s", name, verdict, version, who, alias, reason)
        promoted = False
        if promote and self.promote:
            set_alias(self.hook, name, alias, version)
            promoted = True
            self.log.info("Alias %r of model %r now points at version %s", alias, name, version)
        decision = {
            "promote": promote,
            "promoted": promoted,
            "reason": reason,
            "name": name,
            "alias": alias,
            "version": version,
            "champion_version": holder_version,
            "candidate": candidate,
            "champion": champion,
        }
        context["ti"].xcom_push(key="decision", value=decision)
        return decision
