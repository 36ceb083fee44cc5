"""What a wait is: the plain declarations every service fills in, and how an answer is judged against them.

A :class:`LifecycleSpec` says how to read one kind of resource, where its state and failure reason lie, and
which states are success, failure or in progress; its :class:`ListRead` how the resources are read in bulk
(one paged list for many waits) and its :class:`CancelSpec` how their remote work is stopped. A
:class:`Waiter` evaluates one answer against a spec.

The floor below everything that runs waits: the mechanisms (coalesced reads, ticks and parking,
cancellation), the trigger and the sync wait (:mod:`airflow_provider_modelreg.lifecycle`) read this module;
it reads only :mod:`airflow_provider_modelreg.http`. A spec names its hook by import path and is itself
named by one (``key``), so a trigger serialises to primitives; :class:`ClientSource` is all a wait asks of
that hook, so nothing here imports the hooks.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from airflow_provider_modelreg.http import ApiRequest, ApiResponse, ServiceClient

# The waits' log keeps the name it had when Waiter lived in lifecycle.py (deployments filter on it).
log = logging.getLogger("airflow_provider_modelreg.lifecycle")

Outcome = Literal["success", "failure", "waiting"]


class ClientSource(Protocol):
    """What a wait needs of a spec's hook class (``ModelRegHook`` gives it): a client for a connection,
    the connection fetched without blocking the event loop."""

    def aclient_for(self, conn_id: str) -> Awaitable[ServiceClient]: ...


def at(path: str) -> Callable[[Any], Any]:
    """A reader for a dotted path in a JSON document; missing keys read as None, never KeyError."""
    parts = path.split(".")
    if len(parts) == 1:
        # The common case, read for every item of every coalesced list: a plain dict needs no ABC check.
        key = parts[0]

        def read_one(doc: Any) -> Any:
            if type(doc) is dict:
                return doc.get(key)
            return doc.get(key) if isinstance(doc, Mapping) else None

        return read_one

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
    # A second read beside the resource's own, for remote work that decides the wait although the resource
    # does not show it (NeMo: the spec-analysis job on the jobs API). ``watch(ref, resource)`` gives the read
    # (None: nothing to watch); it is asked while the resource waits and when it reads success. ``watch_verdict``
    # judges the answer: a WatchVerdict "failure" ends the wait at once with its reason; "waiting" keeps a
    # wait going although the resource reads success (work under way will rewrite it); None leaves the
    # resource's own verdict. The sync sensor, the sync wait and the trigger all run it (Waiter.watched).
    watch: Callable[[Mapping[str, Any], Any], ApiRequest | None] | None = None
    watch_verdict: Callable[[Mapping[str, Any], Any], WatchVerdict | None] = field(default=lambda _ref, _data: None)
    # How to stop the remote work of a resource still in progress (cancellation.py runs it), or why the
    # service offers no way to; None: nothing declared (said so in the log).
    cancel: CancelSpec | None = None

    def describe(self, ref: Mapping[str, Any]) -> str:
        return f"{self.noun} " + ", ".join(f"{k}={v}" for k, v in ref.items())

    def hook_class(self) -> ClientSource:
        return _import(self.hook)


def _import(path: str) -> Any:
    module, _, attribute = path.replace(":", ".").rpartition(".")
    return getattr(importlib.import_module(module), attribute)


def resolve_spec(key: str) -> LifecycleSpec:
    spec = _import(key)
    if not isinstance(spec, LifecycleSpec) or spec.key != key:
        raise ValueError(f"{key!r} does not name a LifecycleSpec")
    return spec


# -- bulk reads: paging styles, and the list that serves many waits ------------------------------------------
@dataclass(frozen=True)
class Paging:
    """How one service pages a list: the items of a page, and the request of the next page (or None)."""

    items: Callable[[ApiResponse], list[Any]]
    next: Callable[[ApiRequest, ApiResponse], ApiRequest | None]


def _items_at(key: str | None) -> Callable[[ApiResponse], list[Any]]:
    def items(response: ApiResponse) -> list[Any]:
        # A bare array, or the array under ``key`` (HappyRobot answers either).
        return response.json_list(key if isinstance(response.data, Mapping) else None)

    return items


def _with_param(req: ApiRequest, name: str, value: Any) -> ApiRequest:
    return ApiRequest(req.method, req.path, params={**(req.params or {}), name: value}, headers=req.headers)


def header_token(header: str, param: str, items_key: str | None = None) -> Paging:
    """OCI: the next page's token in a response header, sent back as a query parameter."""

    def next_page(req: ApiRequest, response: ApiResponse) -> ApiRequest | None:
        token = response.headers.get(header)
        return _with_param(req, param, token) if token else None

    return Paging(_items_at(items_key), next_page)


def body_token(token_field: str, param: str, items_key: str) -> Paging:
    """MLflow: the next page's token in the answer's body."""

    def next_page(req: ApiRequest, response: ApiResponse) -> ApiRequest | None:
        token = response.data.get(token_field) if isinstance(response.data, Mapping) else None
        return _with_param(req, param, token) if token else None

    return Paging(_items_at(items_key), next_page)


def page_numbers(param: str, total_pages: Callable[[Any], Any], items_key: str) -> Paging:
    """NeMo: numbered pages and a page count in the answer."""

    def next_page(req: ApiRequest, response: ApiResponse) -> ApiRequest | None:
        page = int((req.params or {}).get(param) or 1)
        try:
            total = int(total_pages(response.data) or 0)
        except (TypeError, ValueError):
            total = 0
        if page >= total or not _items_at(items_key)(response):
            return None
        return _with_param(req, param, page + 1)

    return Paging(_items_at(items_key), next_page)


def one_page(items_key: str | None = None) -> Paging:
    """HappyRobot: the whole list in one answer."""
    return Paging(_items_at(items_key), lambda _req, _response: None)


@dataclass(frozen=True)
class ListRead:
    """How a spec's resources are read in bulk.

    ``group(ref, resource)``: which list covers this wait, from its reference and the resource it last saw
    (None before the first read); None means the wait reads alone. ``request(group)``: the list's first
    page, or the first pages of several lists (one per in-progress state where the service filters by
    one state, so a resource moving between them stays served). ``member(ref)``: the wait's id in the
    list; ``item_id(item)``: an item's id. ``keep``: the item fields worth keeping between polls (the
    state, the fields ``group`` reads), so a snapshot of 10,000 items stays small; None keeps whole items.
    """

    group: Callable[[Mapping[str, Any], Any], Hashable | None]
    request: Callable[[Any], ApiRequest | Sequence[ApiRequest]]
    member: Callable[[Mapping[str, Any]], str]
    item_id: Callable[[Any], Any]
    paging: Paging
    keep: tuple[str, ...] | None = None


class WatchVerdict(NamedTuple):
    """What a spec's watch read decides: the wait fails (with ``reason``) or goes on, in ``state``."""

    outcome: Literal["failure", "waiting"]
    state: str
    reason: str | None = None


class Observation(NamedTuple):
    # A tuple, not a dataclass: cheap to make on every poll, and untracked by the garbage collector once it
    # holds only strings and an untracked resource.
    outcome: Outcome
    state: str | None
    resource: Any
    reason: str | None = None


class Waiter:
    """Evaluates observations of one resource against its spec; logs each unknown state once.

    Slotted and lean: a triggerer keeps one per deferred wait (10,000 of them), and every full garbage
    collection walks them all.
    """

    __slots__ = ("_label", "_unknown_seen", "log", "ref", "spec")

    def __init__(self, spec: LifecycleSpec, ref: Mapping[str, Any], logger: Any = None) -> None:
        self.spec = spec
        self.ref = ref if type(ref) is dict else dict(ref)
        self.log = logger or log
        self._unknown_seen: set[str] | None = None  # made on the first unknown state
        self._label: str | None = None

    @property
    def label(self) -> str:
        """``spec.describe(ref)``, made once: every log line and message of the wait starts with it."""
        if self._label is None:
            self._label = self.spec.describe(self.ref)
        return self._label

    def evaluate(self, data: Any) -> Observation:
        spec = self.spec
        resource = spec.unwrap(data)
        raw_state = spec.state(resource)
        state = raw_state if raw_state is None or type(raw_state) is str else str(raw_state)
        if state in spec.success:
            return Observation("success", state, resource)
        if state in spec.failure:
            return Observation("failure", state, resource, spec.reason(resource))
        if state in spec.in_progress:
            return Observation("waiting", state, resource)
        if self._unknown_seen is None:
            self._unknown_seen = set()
        if state not in self._unknown_seen:
            self._unknown_seen.add(str(state))
            self.log.warning(
                "%s is in state %r, which is not a known state; waiting as if in progress", self.label, state
            )
        return Observation("waiting", state, resource)

    def watch_request(self, obs: Observation) -> ApiRequest | None:
        """The spec's watch read, while the resource waits or reads success (None: nothing to watch)."""
        if obs.outcome == "failure" or self.spec.watch is None:
            return None
        return self.spec.watch(self.ref, obs.resource)

    def watched(self, obs: Observation, data: Any) -> Observation:
        """``obs`` as the watch read's answer leaves it: failed, held back from success, or unchanged."""
        verdict = self.spec.watch_verdict(self.ref, data)
        if verdict is None:
            return obs
        if verdict.outcome == "failure":
            return Observation("failure", verdict.state, obs.resource, verdict.reason)
        # A resource already waiting keeps its own state (it says more about what is awaited).
        return Observation("waiting", verdict.state, obs.resource) if obs.outcome == "success" else obs

    def failure_message(self, obs: Observation, details: Any = None) -> str:
        parts = [f"{self.label} ended {obs.state}"]
        if obs.reason:
            parts.append(obs.reason)
        if details is not None and (text := self.spec.format_details(details)):
            parts.append(text)
        return ": ".join(parts)

    def timeout_message(self, state: str | None) -> str:
        return f"{self.label} was still {state} when the wait timed out"
