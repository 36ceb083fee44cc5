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
    """

    def __init__(
        self,
        *,
        spec: str,
        conn_id: str,
        ref: dict[str, Any],
        poll_interval: float,
        end_time: float,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.conn_id = conn_id
        self.ref = dict(ref)
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)
        self._client: ServiceClient | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "spec": self.spec,
                "conn_id": self.conn_id,
                "ref": self.ref,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        spec = resolve_spec(self.spec)
        waiter = Waiter(spec, self.ref, self.log)
        try:
            # One client (one connection pool) for the whole wait; closed in cleanup().
            if self._client is None:
                self._client = await spec.hook_class().aclient_for(self.conn_id)
            client = self._client
            seen: Any = None
            while True:
                # One list serves every wait of its group where the spec says how (coalesce.py).
                try:
                    data = await coalesce.aread(
                        client,
                        spec,
                        self.ref,
                        previous=seen,
                        poll_interval=self.poll_interval,
                        final=time.time() >= self.end_time,
                    )
                except ServiceError as exc:
                    # A transient error outlasting the per-request retries is ridden out until the deadline.
                    left = self.end_time - time.time()
                    if not exc.retryable or left <= 0:
                        raise
                    pause = min(self.poll_interval, max(left, 0.01))
                    self.log.warning(
                        "%s could not be read (%s); next check in %.1fs", spec.describe(self.ref), exc, pause
                    )
                    await asyncio.sleep(pause)
                    continue
                obs = waiter.evaluate(data)
                seen = obs.resource
                if watch := waiter.watch_request(obs):
                    obs = waiter.watched(obs, (await client.arequest(watch)).data)
                if obs.outcome != "waiting":
                    self.log.info("%s reached %s; resuming the task", spec.describe(self.ref), obs.state)
                if obs.outcome == "success":
                    yield TriggerEvent({"status": "success", "state": obs.state, "ref": self.ref})
                    return
                if obs.outcome == "failure":
                    details = None
                    if spec.failure_details and (extra := spec.failure_details(self.ref, obs.resource)):
                        try:
                            details = (await client.arequest(extra)).data
                        except ServiceError as exc:
                            self.log.warning("could not read failure details: %s", exc)
                    message = waiter.failure_message(obs, details)
                    yield TriggerEvent({"status": "failure", "state": obs.state, "message": message})
                    return
                remaining = self.end_time - time.time()
                if remaining <= 0:
                    message = waiter.timeout_message(obs.state)
                    yield TriggerEvent({"status": "timeout", "state": obs.state, "message": message})
                    return
                pause = min(self.poll_interval, max(remaining, 0.01))
                self.log.info("%s is %s; next check in %.1fs", spec.describe(self.ref), obs.state, pause)
                await asyncio.sleep(pause)
        except ServiceError as exc:
            self.log.warning("%s: giving up: %s", spec.describe(self.ref), exc)
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
