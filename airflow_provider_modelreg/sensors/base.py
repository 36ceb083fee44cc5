"""What every lifecycle sensor shares: a spec, a connection, a resource reference; behaviour inherited."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.lifecycle import LifecycleSpec, LifecycleTrigger, Waiter, raise_for_event

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.sdk import Context

    from airflow_provider_modelreg.hooks.base import ModelRegHook


class LifecycleSensor(BaseSensorOperator):
    """Waits until a resource reaches a success state of its lifecycle spec; fails at once on a failure
    state with the service's reason. Returns the resource (plain JSON) as XCom.

    :param conn_id: the Airflow connection of the service.
    :param deferrable: wait in the triggerer instead of holding a worker slot.
    """

    hook_class: ClassVar[type[ModelRegHook]]
    lifecycle: ClassVar[LifecycleSpec]

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 30.0)
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.hook_class.default_conn_name
        self.deferrable = deferrable
        self._waiter: Waiter | None = None

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
            data = self.hook.request(self.lifecycle.read(ref)).data
        except ServiceError as exc:
            if not exc.retryable:
                raise
            # A transient error outlasting the per-request retries: poke again, until the sensor's timeout.
            self.log.warning(
                "%s could not be read (%s); next check in %ss", self.lifecycle.describe(ref), exc, self.poke_interval
            )
            return PokeReturnValue(is_done=False)
        obs = self._waiter.evaluate(data)
        if watch := self._waiter.watch_request(obs):
            obs = self._waiter.watched(obs, self.hook.request(watch).data)
        if obs.outcome == "failure":
            details = None
            if self.lifecycle.failure_details and (extra := self.lifecycle.failure_details(ref, obs.resource)):
                details = self.hook.request(extra).data
            raise AirflowFailException(self._waiter.failure_message(obs, details))
        self.log.info("%s is %s", self.lifecycle.describe(ref), obs.state)
        done = obs.outcome == "success"
        return PokeReturnValue(is_done=done, xcom_value=self.to_xcom(obs.resource) if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
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
