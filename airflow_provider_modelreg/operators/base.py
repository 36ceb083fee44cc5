"""What every create operator shares: validate, create once, then wait (sync or deferred) for the end state."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow.sdk import BaseOperator

from airflow_provider_modelreg import cancellation, task_state
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.idempotency import GENERATION, generation
from airflow_provider_modelreg.lifecycle import (
    LifecycleFailed,
    LifecycleTimeout,
    LifecycleTrigger,
    raise_for_event,
    wait_sync,
)
from airflow_provider_modelreg.models.base import InvalidRequest
from airflow_provider_modelreg.spec import LifecycleSpec, Waiter
from airflow_provider_modelreg.version_compat import (
    AirflowException,
    AirflowFailException,
    AirflowTaskTimeout,
    TaskDeferralTimeout,
    conf,
    note_if_no_trigger_on_kill,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from airflow_provider_modelreg.hooks.base import ModelRegHook
    from airflow_provider_modelreg.lineage import ModelLineage

DEFAULT_WAIT_TIMEOUT = 24 * 3600.0
ON_FAILED_RESOURCE = ("fail", "recreate")


class CreateAndWaitOperator(BaseOperator):
    """Base of the create operators.

    A subclass says how to build its request (``build_request``), how to create the resource once
    (``create``), how to name it for the lifecycle spec (``resource_ref``) and what goes to XCom
    (``to_xcom``). This class runs the rest: validation errors fail the task without a retry and before
    any request; ``wait_for_completion`` waits in the worker or, with ``deferrable``, in the triggerer.

    Resumable (``durable``, Airflow 3.3's ``ResumableJobMixin`` parameter, with its meaning): the moment the
    create answers, the resource's ref is recorded for the task instance
    (:mod:`airflow_provider_modelreg.task_state`: Airflow 3.3's task state store, Variables before). A
    retry after a worker crash, an OOM kill or a timeout reads the record and reconnects: it waits again
    if the resource is in progress, returns it if it is done, fails with the service's reason if it
    ended failed (or, with ``on_failed_resource="recreate"``, creates a new one under a new idempotency
    key); it creates anew when the recorded resource is gone (404). The gap between the create and the
    record is covered by the service's idempotency key or lookup, as before. ``durable=False`` records
    nothing and reads no record: each try creates (the service's own idempotency token still applies).

    Why not the mixin itself (docs/airflow-versions.md says it at length): its ``execute_resumable``
    resubmits when the recorded job ended failed, where a retry here fails with the service's reason
    unless ``on_failed_resource="recreate"`` (and then under a new idempotency key, which ``submit_job(context)``
    has no way to learn); it keeps the id only in the task state store, which Airflow 3.0 to 3.2 lack
    (here: Variables, plus a claim so no other task instance's lookup adopts the resource); and it reduces
    a resource to a status string, where a 404 must mean "gone: create anew" and other errors fail. The
    names and the meaning of ``durable`` and ``external_id_key`` are the mixin's.

    Nothing a retry needs is kept in XCom: Airflow clears a task's XComs before each try that is not a
    resumption from deferral (apache/airflow#71211), so a try that reconnects writes its links again
    (``persist_links``).

    Cancel on kill (``cancel_on_kill``): when the task is marked failed while it waits (sync: ``on_kill``;
    deferred: the trigger's ``on_kill``, Airflow 3.3), or its wait, execution or deferral times out, the
    resource's remote work is stopped through its spec's cancel (:mod:`airflow_provider_modelreg.cancellation`:
    best effort, idempotent, never masking the failure). A worker shutting down, a trigger moving to
    another triggerer, a task marked success or cleared cancel nothing.

    :param conn_id: the Airflow connection of the service.
    :param wait_for_completion: wait until the resource reaches its final state.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param poll_interval: seconds between two reads of the resource while waiting.
    :param wait_timeout: seconds after which the wait fails (the deferral's timeout too).
    :param cancel_on_kill: stop the remote work when the task is marked failed or times out (default true).
    :param durable: record the created resource so a retry reconnects to it (default true, as
        ``ResumableJobMixin``); false: each try creates anew.
    :param on_failed_resource: what a retry does when the resource an earlier try created ended failed:
        ``"fail"`` (default: fail with the service's reason) or ``"recreate"`` (create a new one).
    """

    hook_class: ClassVar[type[ModelRegHook]]
    lifecycle: ClassVar[LifecycleSpec]
    ui_color = "#e8f4fa"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        cancel_on_kill: bool = True,
        on_failed_resource: Literal["fail", "recreate"] = "fail",
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_failed_resource not in ON_FAILED_RESOURCE:
            raise ValueError(
                f"on_failed_resource: must be one of {', '.join(map(repr, ON_FAILED_RESOURCE))}, "
                f"not {on_failed_resource!r}"
            )
        self.conn_id = conn_id or self.hook_class.default_conn_name
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.cancel_on_kill = cancel_on_kill
        self.on_failed_resource = on_failed_resource
        self.durable = durable
        # The resource this try owns (its lifecycle ref) and its task instance, for on_kill.
        self._owned_ref: dict[str, Any] | None = None
        self._owner_ti: Any = None
        self._cancelled = False

    @cached_property
    def hook(self) -> ModelRegHook:
        return self.hook_class(conn_id=self.conn_id)

    # -- what subclasses give -----------------------------------------------------------------------
    def build_request(self, context: Context) -> Any:
        """The validated request model (raise InvalidRequest on bad input)."""
        raise NotImplementedError

    def create(self, context: Context, request: Any) -> Any:
        """Create the resource once per task instance and return it."""
        raise NotImplementedError

    def resource_ref(self, resource: Any) -> dict[str, Any]:
        """Primitive identifiers the lifecycle spec reads the resource by."""
        raise NotImplementedError

    def to_xcom(self, resource: Any) -> Any:
        """What the task returns (plain JSON)."""
        return resource

    def persist_links(self, context: Context, resource: Any) -> None:
        """Write the extra links' XComs for ``resource`` (after a reconnect: Airflow cleared the first try's)."""

    def lineage(self, resource: Any) -> ModelLineage | None:
        """What this task read and made, for OpenLineage (:mod:`airflow_provider_modelreg.lineage`)."""
        return None

    # -- OpenLineage (asked by the provider's listener once the task succeeded) ---------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs (the training data the task names) and output (the model or version it made), with the
        ``modelRegistry`` facet. The OpenLineage provider is imported only here, when it asks."""
        resource = getattr(self, "_final_resource", None)
        found = None if resource is None else self.lineage(resource)
        if found is None:
            return None
        from airflow_provider_modelreg.lineage import to_operator_lineage

        return to_operator_lineage(found)

    def _done(self, resource: Any) -> Any:
        """The task's result: kept for lineage (the resource as read last), returned as XCom."""
        self._final_resource = resource
        return self.to_xcom(resource)

    # -- the shared flow ----------------------------------------------------------------------------
    @property
    def record_name(self) -> str:
        """Where the created resource's ref is recorded for the task instance (task_state), and the
        ``service`` its claim is made under: the hook's connection type."""
        return self.hook_class.conn_type

    @property
    def external_id_key(self) -> str:
        """ResumableJobMixin's name for the task-state key the resource's id is kept under."""
        return self.record_name

    @property
    def generation_record(self) -> str:
        return f"{self.record_name}.generation"

    def execute(self, context: Context) -> Any:
        self._owner_ti = context.get("ti")
        if created_anew := task_state.recall(context, self.generation_record):
            context[GENERATION] = created_anew  # type: ignore[literal-required]
        try:
            request = self.build_request(context)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
        resumed = self.reconnect(context) if self.durable else None
        if resumed is _RECREATE:
            context[GENERATION] = generation(context) + 1  # type: ignore[literal-required]
            task_state.remember(context, self.generation_record, generation(context))
            request = self.build_request(context)  # idempotency keys are part of some requests
        elif resumed is not None:
            return resumed[0]
        resource = self.create(context, request)
        ref = self.record(context, resource)
        self.log.info("%s: %s", self.lifecycle.describe(ref), self.lifecycle.state(self.lifecycle.unwrap(resource)))
        if not self.wait_for_completion:
            return self._done(resource)
        return self.wait(ref, resource)

    def record(self, context: Context, resource: Any) -> dict[str, Any]:
        """Record ``resource`` as this task instance's (its ref, claimed by its id) and return the ref.

        Done once the create answers; a subclass whose create takes further steps calls it earlier too.
        """
        ref = self.resource_ref(resource)
        self._owned_ref = ref
        if self.durable:
            task_state.remember(context, self.record_name, ref, claim=_claim_id(ref))
        else:  # still this task instance's: no other one's lookup may adopt it
            task_state.claim(context, self.record_name, _claim_id(ref))
        return ref

    def reconnect(self, context: Context) -> tuple[Any] | None:
        """If an earlier try of this task instance created the resource, carry on with it.

        Returns ``(result,)`` when this try is done through the recorded resource, None to create.
        """
        ref = task_state.recall(context, self.record_name)
        if not isinstance(ref, dict) or not ref:
            return None
        described = self.lifecycle.describe(ref)
        try:
            data = self.hook.request(self.lifecycle.read(ref)).data
        except ServiceError as exc:
            if exc.status == 404:
                self.log.warning("%s, recorded by an earlier try, is gone (%s); creating it anew", described, exc)
                return None
            raise
        waiter = Waiter(self.lifecycle, ref, self.log)
        obs = waiter.evaluate(data)
        self.log.info("Reconnecting to %s, created by an earlier try of this task: %s", described, obs.state)
        if obs.outcome == "failure":
            if self.on_failed_resource == "recreate":
                self.log.warning(
                    "%s; creating a new one (on_failed_resource='recreate'); the failed one is left as it is",
                    waiter.failure_message(obs),
                )
                self.discard_failed(ref, obs.resource)
                return _RECREATE
            raise AirflowFailException(waiter.failure_message(obs))
        self._owned_ref = dict(ref)
        self.persist_links(context, obs.resource)
        if obs.outcome == "success" or not self.wait_for_completion:
            self.log.info("%s is %s; not creating another", described, obs.state)
            return (self._done(obs.resource),)
        return (self.wait(ref, data),)

    def discard_failed(self, ref: dict[str, Any], resource: Any) -> None:
        """Before creating anew after a failed resource: free what the new one needs (NeMo: its name)."""

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        obs = Waiter(self.lifecycle, ref, self.log).evaluate(resource)
        if obs.outcome == "waiting" and self.deferrable:
            if self.cancel_on_kill:
                note_if_no_trigger_on_kill(self.log)
            self.defer(
                trigger=LifecycleTrigger(
                    spec=self.lifecycle.key,
                    conn_id=self.conn_id,
                    ref=ref,
                    poll_interval=self.poll_interval,
                    end_time=time.time() + self.wait_timeout,
                    cancel_on_kill=self.cancel_on_kill,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.wait_timeout),
            )
        try:
            final = wait_sync(
                self.hook.client,
                self.lifecycle,
                ref,
                poll_interval=self.poll_interval,
                timeout=self.wait_timeout,
                logger=self.log,
            )
        except LifecycleFailed as exc:
            raise AirflowFailException(str(exc)) from None
        except LifecycleTimeout as exc:
            self.cancel_owned(ref, "the wait timed out")
            raise AirflowException(str(exc)) from None
        except AirflowTaskTimeout:
            self.cancel_owned(ref, "the task's execution_timeout ran out")
            raise
        self.log.info("%s ended %s", self.lifecycle.describe(ref), self.lifecycle.state(final))
        return self._done(final)

    # -- cancel on kill ------------------------------------------------------------------------------
    def cancel_owned(self, ref: Mapping[str, Any] | None, why: str) -> None:
        """Stop the remote work of the resource this task instance owns (once; best effort)."""
        if not self.cancel_on_kill or not ref or self._cancelled:
            return
        self._cancelled = True
        cancellation.cancel_sync(self.hook.client, self.lifecycle, ref, why=why, logger=self.log)

    def on_kill(self) -> None:
        """The task process got SIGTERM (the supervisor's kill when the task was marked failed, or a worker
        shutting down): cancel only when Airflow says the task instance was marked failed."""
        if not self.cancel_on_kill or not self._owned_ref or self._cancelled:
            return
        if (why := cancellation.cancel_reason(self._owner_ti, self.log)) is not None:
            self.cancel_owned(self._owned_ref, why)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """After a deferral: a deferral that timed out (Airflow's own trigger timeout) cancels too."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            self.cancel_owned(task_state.recall(context, self.record_name), "the deferred wait timed out")
            raise

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger: re-read the resource (no other side effect, so a repeat is harmless)."""
        raise_for_event(event, timeout_error=AirflowException)
        assert event is not None
        data = self.hook.request(self.lifecycle.read(event["ref"])).data
        resource = self.lifecycle.unwrap(data)
        self.log.info("%s ended %s", self.lifecycle.describe(event["ref"]), self.lifecycle.state(resource))
        return self._done(resource)


# reconnect()'s answer when the recorded resource failed and the user asked for a new one.
_RECREATE: Any = ("recreate",)


def _claim_id(ref: Mapping[str, Any]) -> Any:
    """The id a lookup would find the resource by: the ref's first ``*id`` value, else the whole ref."""
    return next((v for k, v in ref.items() if k.endswith("id") and isinstance(v, str)), dict(ref))
