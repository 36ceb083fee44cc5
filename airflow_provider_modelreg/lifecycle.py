"""One declarative way to wait: "poll this resource until one of these states".

A :class:`LifecycleSpec` says how to read a resource, where its state and failure reason lie, and which
states are success, failure or in progress. The sync sensor's ``poke``, an operator's sync wait
(:func:`wait_sync`) and the deferrable :class:`LifecycleTrigger` all evaluate the same spec with the same
:class:`Waiter`, so deferred and sync waits give the same result.

A trigger is named by the spec's import path and primitive arguments: it serialises trivially, holds no
secret and has no side effect (it only reads), so it can safely run twice.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg import coalesce
from airflow_provider_modelreg.http import ApiRequest, ServiceClient, ServiceError

if TYPE_CHECKING:
    from airflow_provider_modelreg.coalesce import ListRead
    from airflow_provider_modelreg.hooks.base import ModelRegHook

log = logging.getLogger(__name__)

Outcome = Literal["success", "failure", "waiting"]


def at(path: str) -> Callable[[Any], Any]:
    """A reader for a dotted path in a JSON document; missing keys read as None, never KeyError."""
    parts = path.split(".")

    def read(doc: Any) -> Any:
        for part in parts:
            if not isinstance(doc, Mapping):
                return None
            doc = doc.get(part)
        return doc

    return read


def first_of(*paths: str) -> Callable[[Any], str | None]:
    readers = [at(p) for p in paths]

    def read(doc: Any) -> str | None:
        for reader in readers:
            value = reader(doc)
            if value not in (None, "", [], {}):
                return str(value)
        return None

    return read


@dataclass(frozen=True)
class CancelSpec:
    """How to stop one kind of resource's remote work, declared once per service.

    ``request(ref, resource, found)`` gives the cancel call for a resource still in progress (None: nothing
    to cancel); ``find(ref, resource)`` is an extra read whose answer (``found``) the cancel needs (NeMo:
    the job list that names the spec-analysis job). A service without any cancel gives ``unavailable``:
    why, for the log. ``already_done`` are HTTP statuses that mean the work has ended anyway.
    """

    request: Callable[[Mapping[str, Any], Any, Any], ApiRequest | None] | None = None
    find: Callable[[Mapping[str, Any], Any], ApiRequest | None] | None = None
    unavailable: str | None = None
    already_done: frozenset[int] = frozenset({404, 409})
    # What the cancel does, for the log ("marks the run KILLED").
    effect: str = "cancelled"


@dataclass(frozen=True)
class LifecycleSpec:
    """How to wait for one kind of resource. ``key`` is its own import path ("module:ATTRIBUTE")."""

    key: str
    hook: str
    noun: str
    read: Callable[[Mapping[str, Any]], ApiRequest]
    state: Callable[[Any], Any]
    success: frozenset[str]
    failure: frozenset[str]
    in_progress: frozenset[str]
    reason: Callable[[Any], str | None] = field(default=lambda _resource: None)
    # The resource inside the answer (MLflow wraps it: {"model_version": {...}}).
    unwrap: Callable[[Any], Any] = field(default=lambda data: data)
    # An extra read on failure whose answer explains it better (OCI work-request errors).
    failure_details: Callable[[Mapping[str, Any], Any], ApiRequest | None] | None = None
    format_details: Callable[[Any], str | None] = field(default=lambda _data: None)
    # How deferred waits on one triggerer share one paged list read (coalesce.py); None: each reads alone.
    list_read: ListRead | None = None
    # A second read while the resource waits, whose answer can end the wait at once: ``watch_failure``
    # gives (state, reason) when it shows a failure (NeMo: the spec-analysis job on the jobs API).
    watch: Callable[[Mapping[str, Any], Any], ApiRequest | None] | None = None
    watch_failure: Callable[[Mapping[str, Any], Any], tuple[str, str] | None] = field(default=lambda _ref, _data: None)
    # How to stop the remote work of a resource still in progress (cancellation.py runs it), or why the
    # service offers no way to; None: nothing declared (said so in the log).
    cancel: CancelSpec | None = None

    def describe(self, ref: Mapping[str, Any]) -> str:
        return f"{self.noun} " + ", ".join(f"{k}={v}" for k, v in ref.items())

    def hook_class(self) -> type[ModelRegHook]:
        return _import(self.hook)


def _import(path: str) -> Any:
    module, _, attribute = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def resolve_spec(key: str) -> LifecycleSpec:
    spec = _import(key)
    if not isinstance(spec, LifecycleSpec) or spec.key != key:
        raise ValueError(f"{key!r} does not name a LifecycleSpec")
    return spec


@dataclass(frozen=True)
class Observation:
    outcome: Outcome
    state: str | None
    resource: Any
    reason: str | None = None


class LifecycleFailed(Exception):
    """The resource reached a failure state; the message carries the service's reason."""


class LifecycleTimeout(Exception):
    """The resource was still in progress when the wait's own timeout ran out."""


class Waiter:
    """Evaluates observations of one resource against its spec; logs each unknown state once."""

    def __init__(self, spec: LifecycleSpec, ref: Mapping[str, Any], logger: Any = None) -> None:
        self.spec = spec
        self.ref = dict(ref)
        self.log = logger or log
        self._unknown_seen: set[str] = set()

    def evaluate(self, data: Any) -> Observation:
        resource = self.spec.unwrap(data)
        raw_state = self.spec.state(resource)
        state = None if raw_state is None else str(raw_state)
        if state in self.spec.success:
            return Observation("success", state, resource)
        if state in self.spec.failure:
            return Observation("failure", state, resource, self.spec.reason(resource))
        if state not in self.spec.in_progress and state not in self._unknown_seen:
            self._unknown_seen.add(str(state))
            self.log.warning(
                "%s is in state %r, which is not a known state; waiting as if in progress",
                self.spec.describe(self.ref),
                state,
            )
        return Observation("waiting", state, resource)

    def watch_request(self, obs: Observation) -> ApiRequest | None:
        """The spec's watch read, while the resource is still waiting (None: nothing to watch)."""
        if obs.outcome != "waiting" or self.spec.watch is None:
            return None
        return self.spec.watch(self.ref, obs.resource)

    def watched(self, obs: Observation, data: Any) -> Observation:
        """``obs``, or a failure when the watch read's answer shows one."""
        failed = self.spec.watch_failure(self.ref, data)
        return Observation("failure", failed[0], obs.resource, failed[1]) if failed else obs

    def failure_message(self, obs: Observation, details: Any = None) -> str:
        parts = [f"{self.spec.describe(self.ref)} ended {obs.state}"]
        if obs.reason:
            parts.append(obs.reason)
        if details is not None and (text := self.spec.format_details(details)):
            parts.append(text)
        return ": ".join(parts)

    def timeout_message(self, state: str | None) -> str:
        return f"{self.spec.describe(self.ref)} was still {state} when the wait timed out"


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
    waiter = Waiter(spec, ref, logger)
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = client.request(spec.read(ref)).data
        except ServiceError as exc:
            # A transient error outlasting the per-request retries is ridden out until the wait's deadline.
            left = deadline - time.monotonic()
            if not exc.retryable or left <= 0:
                raise
            (logger or log).warning(
                "%s could not be read (%s); next check in %ss", spec.describe(ref), exc, min(poll_interval, left)
            )
            sleep(min(poll_interval, max(left, 0.01)))
            continue
        obs = waiter.evaluate(data)
        if watch := waiter.watch_request(obs):
            obs = waiter.watched(obs, client.request(watch).data)
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
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.ref_fields = list(ref_fields)
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

    async def _aclient(self, spec: LifecycleSpec) -> ServiceClient:
        # One client (one connection pool) for the whole wait; closed in cleanup().
        if self._client is None:
            self._client = await spec.hook_class().aclient_for(self.conn_id)
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
        from airflow_provider_modelreg.cancellation import acancel_reason

        why = await acancel_reason(self.task_instance, self.log)
        if why is not None:
            spec = resolve_spec(self.spec)
            await self._cancel(spec, self.resource_ref(), why)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        spec = resolve_spec(self.spec)
        ref = self.resource_ref()
        waiter = Waiter(spec, ref, self.log)
        end_time = math.inf if self.end_time is None else self.end_time
        try:
            client = await self._aclient(spec)
            seen: Any = None
            while True:
                # One list serves every wait of its group where the spec says how (coalesce.py).
                try:
                    data = await coalesce.aread(
                        client,
                        spec,
                        ref,
                        previous=seen,
                        poll_interval=self.poll_interval,
                        final=time.time() >= end_time,
                    )
                except ServiceError as exc:
                    # A transient error outlasting the per-request retries is ridden out until the deadline.
                    left = end_time - time.time()
                    if not exc.retryable or left <= 0:
                        raise
                    pause = min(self.poll_interval, max(left, 0.01))
                    self.log.warning("%s could not be read (%s); next check in %.1fs", spec.describe(ref), exc, pause)
                    await asyncio.sleep(pause)
                    continue
                obs = waiter.evaluate(data)
                seen = obs.resource
                if watch := waiter.watch_request(obs):
                    obs = waiter.watched(obs, (await client.arequest(watch)).data)
                if obs.outcome != "waiting":
                    self.log.info("%s reached %s; resuming the task", spec.describe(ref), obs.state)
                if obs.outcome == "success":
                    yield TriggerEvent({"status": "success", "state": obs.state, "ref": ref})
                    return
                if obs.outcome == "failure":
                    details = None
                    if spec.failure_details and (extra := spec.failure_details(ref, obs.resource)):
                        try:
                            details = (await client.arequest(extra)).data
                        except ServiceError as exc:
                            self.log.warning("could not read failure details: %s", exc)
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
                self.log.info("%s is %s; next check in %.1fs", spec.describe(ref), obs.state, pause)
                await asyncio.sleep(pause)
        except ServiceError as exc:
            self.log.warning("%s: giving up: %s", spec.describe(ref), exc)
            yield TriggerEvent({"status": "error", "message": str(exc)})

    async def cleanup(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def raise_for_event(event: Mapping[str, Any] | None, *, timeout_error: type[Exception]) -> None:
    """Turn a trigger event into the task's outcome: return on success, raise otherwise.

    A terminal failure state fails the task at once (no retry would change it); a timeout raises
    ``timeout_error``; a service error raises a retryable AirflowException.
    """
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    status = (event or {}).get("status")
    message = str((event or {}).get("message") or f"unexpected trigger event: {event!r}")
    if status == "success":
        return
    if status == "failure":
        raise AirflowFailException(message)
    if status == "timeout":
        raise timeout_error(message)
    raise AirflowException(message)
