"""One declarative way to wait: "poll this resource until one of these states".

A :class:`~airflow_provider_modelreg.spec.LifecycleSpec` (spec.py, the floor below) says how to read a
resource, where its state and failure reason lie, and which states are success, failure or in progress.
The sync sensor's ``poke``, an operator's sync wait (:func:`wait_sync`) and the deferrable
:class:`LifecycleTrigger` all evaluate the same spec with the same :class:`~airflow_provider_modelreg.spec.Waiter`,
so deferred and sync waits give the same result. The trigger runs on the mechanisms beside it: coalesced
list reads (coalesce.py), the loop's shared ticks and parked waits (ticks.py) and cancellation
(cancellation.py); each reads specs and none reads this module.

A trigger is named by the spec's import path and primitive arguments: it serialises trivially, holds no
secret and has no side effect (it only reads), so it can safely run twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg import coalesce, pacing, ticks
from airflow_provider_modelreg.http import ServiceClient, ServiceError
from airflow_provider_modelreg.spec import ClientSource, LifecycleSpec, Waiter, resolve_spec

if TYPE_CHECKING:
    from airflow_provider_modelreg.cancellation import TriggerOnKill

log = logging.getLogger(__name__)


class LifecycleFailed(Exception):
    """The resource reached a failure state; the message carries the service's reason."""


class LifecycleTimeout(Exception):
    """The resource was still in progress when the wait's own timeout ran out."""


def wait_sync(
    client: ServiceClient,
    spec: LifecycleSpec,
    ref: Mapping[str, Any],
    *,
    poll_interval: float,
    timeout: float,
    logger: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Poll until success (returns the resource), failure (LifecycleFailed) or timeout (LifecycleTimeout)."""
    poll_interval = pacing.poll_interval(poll_interval)  # the configured interval, outside a sandbox test
    waiter = Waiter(spec, ref, logger)
    deadline = time.monotonic() + timeout
    while True:
        try:
            obs = waiter.evaluate(client.request(spec.read(ref)).data)
            if watch := waiter.watch_request(obs):
                obs = waiter.watched(obs, client.request(watch).data)
        except ServiceError as exc:
            # A transient error outlasting the per-request retries (of the resource's read or the spec's watch
            # read) is ridden out until the wait's deadline.
            left = deadline - time.monotonic()
            if not exc.retryable or left <= 0:
                raise
            (logger or log).warning(
                "%s could not be read (%s); next check in %ss", spec.describe(ref), exc, min(poll_interval, left)
            )
            sleep(min(poll_interval, max(left, 0.01)))
            continue
        if obs.outcome == "success":
            (logger or log).info("%s reached %s", spec.describe(ref), obs.state)
            return obs.resource
        if obs.outcome == "failure":
            details = None
            if spec.failure_details and (extra := spec.failure_details(ref, obs.resource)):
                details = _best_effort(lambda req=extra: client.request(req).data, waiter.log)
            raise LifecycleFailed(waiter.failure_message(obs, details))
        if time.monotonic() + poll_interval > deadline:
            raise LifecycleTimeout(f"{waiter.timeout_message(obs.state)} after {timeout:.0f}s")
        (logger or log).info("%s is %s; next check in %ss", spec.describe(ref), obs.state, poll_interval)
        sleep(poll_interval)


def _best_effort(read: Callable[[], Any], logger: Any) -> Any:
    try:
        return read()
    except ServiceError as exc:  # the failure itself is what matters; details are a bonus
        logger.warning("could not read failure details: %s", exc)
        return None


class LifecycleTrigger(BaseTrigger):
    """Polls one resource until its spec says it is done; the one trigger of this provider.

    Every argument is a primitive: the spec's import path, a connection id, the resource reference, the
    poll interval and an absolute deadline (epoch seconds), so a triggerer restart resumes the same wait.

    ``cancel_on_kill`` (create operators only: the task owns the resource): when the wait times out, or
    Airflow 3.3 calls :meth:`on_kill` because the task was marked failed, the remote work is stopped
    through the spec's cancel (:mod:`airflow_provider_modelreg.cancellation`). A trigger that only moves to
    another triggerer cancels nothing.

    Started from the triggerer (a sensor's ``start_from_trigger``): ``ref_fields`` name the extra keyword
    arguments that make the ref, the sensor's template fields of the same names, which the triggerer
    renders before :meth:`run`; ``end_time`` is then None and Airflow's trigger timeout ends the wait.
    """

    # The on_kill under way, which cleanup waits for; a class default, so a trigger never killed keeps none.
    _on_kill: TriggerOnKill | None = None

    def __init__(
        self,
        *,
        spec: str,
        conn_id: str,
        ref: dict[str, Any] | None = None,
        poll_interval: float,
        end_time: float | None,
        cancel_on_kill: bool = False,
        ref_fields: list[str] | tuple[str, ...] = (),
        **fields: Any,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.conn_id = conn_id
        self.ref = dict(ref or {})
        self.poll_interval = pacing.poll_interval(float(poll_interval))  # as configured, outside a sandbox test
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        # A tuple: the empty one is shared, where an empty list per trigger is one more object for the collector.
        self.ref_fields = tuple(ref_fields)
        unknown = set(fields) - set(self.ref_fields)
        if unknown:
            raise TypeError(f"LifecycleTrigger got unexpected arguments {sorted(unknown)} (not in ref_fields)")
        for name in self.ref_fields:
            setattr(self, name, fields.get(name))
        self._client: ServiceClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "spec": self.spec,
            "conn_id": self.conn_id,
            "ref": self.ref,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
        }
        if self.cancel_on_kill:
            kwargs["cancel_on_kill"] = True
        if self.ref_fields:
            kwargs["ref_fields"] = list(self.ref_fields)
            kwargs.update({name: getattr(self, name) for name in self.ref_fields})
        return (f"{type(self).__module__}.{type(self).__qualname__}", kwargs)

    def resource_ref(self) -> dict[str, Any]:
        """The ref: given whole, or (started from the triggerer) made of the rendered ref fields."""
        if self.ref:
            return self.ref
        return {name: str(getattr(self, name)) for name in self.ref_fields if getattr(self, name) not in (None, "")}

    @property
    def log(self) -> Any:
        # One logger for every wait of the class: LoggingMixin would build one per trigger (~10 objects
        # each, walked by every full garbage collection). The triggerer routes a line to its task's log by
        # the context variables it binds per trigger, not by the logger object.
        return type(self).logger()

    async def _aclient(self, spec: LifecycleSpec) -> ServiceClient:
        # One client for the whole wait, shared with every wait of the same identity; released in cleanup().
        if self._client is None:
            self._client = await _acquire_client(spec.hook_class(), self.conn_id)
        return self._client

    async def _cancel(self, spec: LifecycleSpec, ref: Mapping[str, Any], why: str) -> None:
        from airflow_provider_modelreg.cancellation import cancel_async

        try:
            client = await self._aclient(spec)
        except Exception as exc:  # best effort: no client means no cancel, said so
            self.log.warning("Could not cancel %s (%s): %s", spec.describe(ref), why, type(exc).__name__)
            return
        await cancel_async(client, spec, ref, why=why, logger=self.log)

    async def on_kill(self) -> None:
        """Airflow 3.3: the triggerer calls this when a user acted on the deferred task (and, until
        apache/airflow#73454 lands, also when the trigger was handed to another triggerer). The task
        instance's state tells which: only a task marked failed cancels (cancellation.cancel_reason)."""
        if not self.cancel_on_kill:
            return
        from airflow_provider_modelreg.cancellation import TriggerOnKill, acancel_reason

        async def cancel_if_marked_failed() -> None:
            why = await acancel_reason(self.task_instance, self.log)
            if why is not None:
                spec = resolve_spec(self.spec)
                await self._cancel(spec, self.resource_ref(), why)

        # In a task of its own, which the triggerer's repeated cancels never reach (cancellation.py).
        described = resolve_spec(self.spec).describe(self.resource_ref())
        self._on_kill = TriggerOnKill(cancel_if_marked_failed(), described, self.log)
        await self._on_kill.finish()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        spec = resolve_spec(self.spec)
        ref = self.resource_ref()
        log = self.log
        waiter = Waiter(spec, ref, log)
        end_time = math.inf if self.end_time is None else self.end_time
        try:
            client = await self._aclient(spec)
            seen: Any = None
            logged_state: Any = _NOTHING_LOGGED
            served: Any = None  # a poll's answer a parked wait was handed (ticks.park)
            while True:
                # One list serves every wait of its group where the spec says how (coalesce.py).
                try:
                    data = served
                    served = None
                    if data is None:
                        data = await coalesce.aread(
                            client,
                            spec,
                            ref,
                            previous=seen,
                            poll_interval=self.poll_interval,
                            final=time.time() >= end_time,
                        )
                    obs = waiter.evaluate(data)
                    seen = coalesce.remembered(spec, obs.resource)
                    if spec.watch is not None and (watch := waiter.watch_request(obs)):
                        obs = waiter.watched(obs, (await client.arequest(watch)).data)
                except ServiceError as exc:
                    # A transient error outlasting the per-request retries (of the resource's read or of its
                    # watch read) is ridden out until the deadline.
                    left = end_time - time.time()
                    if not exc.retryable or left <= 0:
                        raise
                    pause = min(self.poll_interval, max(left, 0.01))
                    log.warning("%s could not be read (%s); next check in %.1fs", waiter.label, exc, pause)
                    await ticks.sleep(pause)
                    continue
                if obs.outcome != "waiting":
                    log.info("%s reached %s; resuming the task", waiter.label, obs.state)
                if obs.outcome == "success":
                    yield TriggerEvent({"status": "success", "state": obs.state, "ref": ref})
                    return
                if obs.outcome == "failure":
                    details = None
                    if spec.failure_details and (extra := spec.failure_details(ref, obs.resource)):
                        try:
                            details = (await client.arequest(extra)).data
                        except ServiceError as exc:
                            log.warning("could not read failure details: %s", exc)
                    message = waiter.failure_message(obs, details)
                    yield TriggerEvent({"status": "failure", "state": obs.state, "message": message})
                    return
                remaining = end_time - time.time()
                if remaining <= 0:
                    message = waiter.timeout_message(obs.state)
                    if self.cancel_on_kill:
                        await self._cancel(spec, ref, "the wait timed out")
                    yield TriggerEvent({"status": "timeout", "state": obs.state, "message": message})
                    return
                pause = min(self.poll_interval, max(remaining, 0.01))
                # The first check and each change of state are logged; a check that finds the state unchanged
                # only at debug level (10,000 waits would otherwise log 10,000 lines per poll interval).
                if obs.state != logged_state:
                    logged_state = obs.state
                    log.info("%s is %s; next check in %.1fs", waiter.label, obs.state, pause)
                else:
                    log.debug("%s is still %s; next check in %.1fs", waiter.label, obs.state, pause)
                # Not held while sleeping: an own read's answer is a whole resource with lists in it, objects
                # every full collection would walk (``seen`` keeps what the next poll needs).
                del obs, data
                if spec.watch is None:
                    # Polls that find the resource as it was are made by the loop's ticks, waking this task
                    # only when one shows something new: nothing made per poll outlives it (ticks.park).
                    served = await ticks.park(
                        client, spec, ref, seen=seen, pause=pause, poll_interval=self.poll_interval, end_time=end_time
                    )
                else:  # the spec's watch read goes with every poll
                    await ticks.sleep(pause)
        except ServiceError as exc:
            log.warning("%s: giving up: %s", waiter.label, exc)
            yield TriggerEvent({"status": "error", "message": str(exc)})

    async def cleanup(self) -> None:
        if self._on_kill is not None:  # an on_kill still cancelling keeps the client
            await self._on_kill.finish()
        client, self._client = self._client, None
        if client is not None:
            await _release_client(client)


_NOTHING_LOGGED = object()


# -- clients shared by the waits of one event loop ----------------------------------------------------
class _LoopClients:
    """The ServiceClients the waits of one event loop use: one per identity (:meth:`ServiceClient.share_key`),
    counted by reference, and the connection fetches in flight, one per (hook, connection id).

    10,000 waits of one connection then hold one client, not 10,000 (each a dozen objects the garbage
    collector walks), and a triggerer starting them fetches the connection a few times, not 10,000 times.
    Two clients with one share key already share one pooled httpx client (http.SharedAsyncClient), so
    sharing the ServiceClient changes nothing that is sent.
    """

    __slots__ = ("building", "clients", "users")

    def __init__(self) -> None:
        self.building: dict[tuple[Any, str], asyncio.Future[ServiceClient]] = {}
        self.clients: dict[str, ServiceClient] = {}
        self.users: dict[int, int] = {}  # id(client) -> waits using it


_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = weakref.WeakKeyDictionary()


async def _acquire_client(hook: ClientSource, conn_id: str) -> ServiceClient:
    shared = _loop_clients.setdefault(asyncio.get_running_loop(), _LoopClients())
    key = (hook, conn_id)
    building = shared.building.get(key)
    joined = building is not None
    if building is None:
        # Waits starting while this fetch is in flight use its answer (fetched after they started).
        building = shared.building[key] = asyncio.ensure_future(hook.aclient_for(conn_id))
        building.add_done_callback(
            lambda done: shared.building.pop(key, None) if shared.building.get(key) is done else None
        )
    try:
        client = await asyncio.shield(building)
    except Exception:
        if not joined:
            raise
        client = await hook.aclient_for(conn_id)  # its own error, not a copy of another wait's
    identity = client.share_key()
    client = shared.clients.setdefault(identity, client)
    shared.users[id(client)] = shared.users.get(id(client), 0) + 1
    return client


async def _release_client(client: ServiceClient) -> None:
    shared = _loop_clients.get(asyncio.get_running_loop())
    users = 0 if shared is None else shared.users.get(id(client), 0) - 1
    if users > 0:
        assert shared is not None
        shared.users[id(client)] = users
        return
    if shared is not None:
        shared.users.pop(id(client), None)
        for identity, known in list(shared.clients.items()):
            if known is client:
                del shared.clients[identity]
    await client.aclose()


def raise_for_event(event: Mapping[str, Any] | None, *, timeout_error: type[Exception]) -> None:
    """Turn a trigger event into the task's outcome: return on success, raise otherwise.

    A terminal failure state fails the task at once (no retry would change it); a timeout raises
    ``timeout_error``; a service error raises a retryable AirflowException.
    """
    from airflow_provider_modelreg.version_compat import AirflowException, AirflowFailException

    status = (event or {}).get("status")
    message = str((event or {}).get("message") or f"unexpected trigger event: {event!r}")
    if status == "success":
        return
    if status == "failure":
        raise AirflowFailException(message)
    if status == "timeout":
        raise timeout_error(message)
    raise AirflowException(message)
