"""What every lifecycle sensor shares: a spec, a connection, a resource reference; behaviour inherited."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_modelreg import pacing
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.lifecycle import LifecycleTrigger, raise_for_event
from airflow_provider_modelreg.spec import LifecycleSpec, Waiter
from airflow_provider_modelreg.version_compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    conf,
    note_if_no_start_from_trigger,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context
    from airflow.triggers.base import StartTriggerArgs

    from airflow_provider_modelreg.hooks.base import ModelRegHook


class LifecycleSensor(BaseSensorOperator):
    """Waits until a resource reaches a success state of its lifecycle spec; fails at once on a failure
    state with the service's reason. Returns the resource (plain JSON) as XCom.

    Started from the triggerer (``start_from_trigger=True``, for sensors whose ref is made of their template
    fields alone, ``ref_fields``): on Airflow 3.3 the scheduler hands the task straight to a triggerer,
    which renders those fields and runs the same :class:`LifecycleTrigger` on the same spec; a worker runs
    only ``execute_complete`` once it is done, so a wait of hours takes no worker slot, not even for a
    first poke. Airflow 3.2's scheduler does not start tasks in the triggerer (its code for it is
    commented out): there the sensor runs as ``deferrable=True`` (one poke in a worker, then deferred).

    :param conn_id: the Airflow connection of the service.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    :param start_from_trigger: start the wait in the triggerer, with no worker at all until it ends
        (Airflow 3.3; implies ``deferrable``). The sensor's ``timeout`` is the trigger's.
    """

    hook_class: ClassVar[type[ModelRegHook]]
    lifecycle: ClassVar[LifecycleSpec]
    # The template fields that make the resource's ref on their own (no connection read): a sensor with
    # them can start in the triggerer. Empty: its ref needs the connection (MLflow's API prefix), so not.
    ref_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30.0)
        super().__init__(**kwargs)
        if start_from_trigger and not self.ref_fields:
            raise ValueError(
                f"{type(self).__name__}: start_from_trigger is not available: the {self.lifecycle.noun}'s "
                "reference needs its connection, which only a worker reads; use deferrable=True"
            )
        self.conn_id = conn_id or self.hook_class.default_conn_name
        self.start_from_trigger = start_from_trigger
        self.deferrable = deferrable or start_from_trigger
        self._waiter: Waiter | None = None

    @property  # type: ignore[override]
    def start_trigger_args(self) -> StartTriggerArgs | None:
        """What Airflow 3.3's scheduler starts the trigger with: the ref fields as the sensor holds them
        (templates, rendered by the triggerer), no deadline of the trigger's own (Airflow's trigger timeout,
        the sensor's ``timeout``, ends it)."""
        if not self.start_from_trigger:
            return None
        from airflow.triggers.base import StartTriggerArgs

        return StartTriggerArgs(
            trigger_cls=f"{LifecycleTrigger.__module__}.{LifecycleTrigger.__qualname__}",
            trigger_kwargs={
                "spec": self.lifecycle.key,
                "conn_id": self.conn_id,
                "poll_interval": float(self.poke_interval),
                "end_time": None,
                "ref_fields": list(self.ref_fields),
                **{name: getattr(self, name, None) for name in self.ref_fields},
            },
            next_method="execute_complete",
            next_kwargs=None,
            timeout=timedelta(seconds=self.timeout),
        )

    @start_trigger_args.setter
    def start_trigger_args(self, _value: Any) -> None:
        """Made from the sensor's fields, never set (Airflow's class default is written on some paths)."""

    def resource_ref(self) -> dict[str, Any]:
        """Primitive identifiers of the resource, from the (rendered) template fields."""
        raise NotImplementedError

    def to_xcom(self, resource: Any) -> Any:
        return resource

    @cached_property
    def hook(self) -> ModelRegHook:
        return self.hook_class(conn_id=self.conn_id)

    def poke(self, context: Context) -> PokeReturnValue:
        ref = self.resource_ref()
        if self._waiter is None:  # one waiter per task run, so an unknown state is logged once
            self._waiter = Waiter(self.lifecycle, ref, self.log)
        try:
            obs = self._waiter.evaluate(self.hook.request(self.lifecycle.read(ref)).data)
            if watch := self._waiter.watch_request(obs):
                obs = self._waiter.watched(obs, self.hook.request(watch).data)
        except ServiceError as exc:
            if not exc.retryable:
                raise
            # A transient error outlasting the per-request retries (of the resource's read or the spec's watch
            # read): poke again, until the sensor's timeout.
            self.log.warning(
                "%s could not be read (%s); next check in %ss", self.lifecycle.describe(ref), exc, self.poke_interval
            )
            return PokeReturnValue(is_done=False)
        if obs.outcome == "failure":
            details = None
            if self.lifecycle.failure_details and (extra := self.lifecycle.failure_details(ref, obs.resource)):
                details = self.hook.request(extra).data
            raise AirflowFailException(self._waiter.failure_message(obs, details))
        self.log.info("%s is %s", self.lifecycle.describe(ref), obs.state)
        done = obs.outcome == "success"
        return PokeReturnValue(is_done=done, xcom_value=self.to_xcom(obs.resource) if done else None)

    def execute(self, context: Context) -> Any:
        if self.start_from_trigger:  # a worker runs it: before 3.3 the scheduler does not start it in the triggerer
            note_if_no_start_from_trigger(self.log)
        if not self.deferrable:
            self.poke_interval = pacing.poll_interval(self.poke_interval)  # as configured, outside a sandbox test
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:  # say which resource was waited for
                raise AirflowSensorTimeout(f"{self.lifecycle.describe(self.resource_ref())}: {exc}") from None
        # One read first: a resource already in its final state needs no trigger.
        first = self.poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer(
            trigger=LifecycleTrigger(
                spec=self.lifecycle.key,
                conn_id=self.conn_id,
                ref=self.resource_ref(),
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resume after the trigger: re-read the resource (no other side effect, so a repeat is harmless)."""
        raise_for_event(event, timeout_error=AirflowSensorTimeout)
        assert event is not None
        data = self.hook.request(self.lifecycle.read(event["ref"])).data
        resource = self.lifecycle.unwrap(data)
        self.log.info("%s ended %s", self.lifecycle.describe(event["ref"]), self.lifecycle.state(resource))
        return self.to_xcom(resource)
