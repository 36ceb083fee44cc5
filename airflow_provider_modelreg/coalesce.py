"""Coalesced reads: one paged list serves every deferred wait it covers.

Waits in one triggerer (one event loop) for resources of one kind, on one connection, share reads where the
service lists with filters: a spec's :class:`~airflow_provider_modelreg.spec.ListRead` says which list covers
a wait (its *group*, from the reference and the resource last seen), how to ask for that list and how to page
through it. A wait that polls asks its group; if a list of the group was fetched (or started) within a quarter
of the wait's own poll interval it is used, otherwise the wait starts one and every wait asking meanwhile
joins it.

What makes the results identical to individual reads:

* a list answer serves only *in-progress* observations; a resource missing from the list, or shown in any
  other state, is read on its own, so every success, failure (with its reason and details) and unknown
  state comes from the resource's own read;
* the read at or after a wait's deadline goes alone, so a timeout names the state an own read saw;
* a list that fails (any error, bad shape, too many pages) falls back to own reads, whose errors are then
  the wait's own, as without coalescing;
* a group with fewer waits than four times its pages reads alone (a list would cost more than it saves).

Each wait keeps its own poll interval and deadline (the trigger's loop is unchanged); nothing here is
serialised with a trigger, so a trigger still serialises to primitives and can run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.http import ApiRequest, ServiceClient

if TYPE_CHECKING:
    from airflow_provider_modelreg.spec import LifecycleSpec, ListRead

log = logging.getLogger(__name__)

# A list serves a wait when it started at most this fraction of the wait's poll interval ago: about four
# lists per poll interval per group, each wait seeing its resource at most a quarter interval late.
FRESHNESS = 0.25
# More pages than this: the list is not worth it (own reads instead).
MAX_PAGES = 50
# A wait counts as one of its group's until two of its poll intervals plus this after its last ask (a busy
# loop may poll late).
ASKER_GRACE = 5.0
# After a failed list, the group reads alone for this many of its poll intervals.
FAILURE_PAUSE_INTERVALS = 1.0


# -- the coalescer ---------------------------------------------------------------------------------------
class ListJoiner:
    """A joiner of a group's list other than a wait's future (a parked wait, ticks.py): told the list's
    items, or None when the list failed, by :meth:`serve`."""

    __slots__ = ()

    def serve(self, items: dict[str, Any] | None) -> None:
        raise NotImplementedError


@dataclass
class _Group:
    items: dict[str, Any] | None = None
    fetched_at: float = float("-inf")
    inflight: asyncio.Future[dict[str, Any] | None] | None = None
    inflight_started: float = float("-inf")
    # futures of waits in aread, and parked waits (ListJoiner)
    joiners: list[Any] = field(default_factory=list)
    pages: int = 1
    # member -> until when it counts as a wait of this group (see ASKER_GRACE)
    askers: dict[str, float] = field(default_factory=dict)
    failed_until: float = float("-inf")
    lists: int = 0


_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Group]] = (
    weakref.WeakKeyDictionary()
)
# Counters for tests and benchmarks: list pages fetched, waits served by a list, own reads.
stats = {"list_pages": 0, "served": 0, "alone": 0}


def remembered(spec: LifecycleSpec, resource: Any) -> Any:
    """What a wait keeps of the resource it saw, to pass as ``previous`` to its next :func:`aread`: only the
    fields its spec's list keeps (``ListRead.keep``), not the whole resource its own read gave (~1.5 KB)."""
    lr = spec.list_read
    if lr is None or lr.keep is None or not isinstance(resource, Mapping) or len(resource) <= len(lr.keep):
        return resource
    return {k: resource[k] for k in lr.keep if k in resource}


async def aread(
    client: ServiceClient,
    spec: LifecycleSpec,
    ref: Mapping[str, Any],
    *,
    previous: Any,
    poll_interval: float,
    final: bool,
) -> Any:
    """The resource's data for one poll of one wait: from its group's list when that serves, else its own read.

    ``previous`` is the resource this wait saw last (None at first); ``final`` says this read is at or after
    the wait's deadline (it then goes alone).
    """
    serving = serving_group(client, spec, ref, previous, poll_interval, final)
    if serving is None:
        return await _alone(client, spec, ref)
    group, member, gkey = serving
    snapshot = fresh_items(group, poll_interval)
    if snapshot is None:
        # Each wait awaits a future of its own (cancelling one wait cancels neither the list nor another wait).
        joined: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        joiners_of(group, client, spec, gkey, poll_interval).append(joined)
        snapshot = await joined
    item = None if snapshot is None else snapshot.get(member)
    if item is None:
        return await _alone(client, spec, ref)
    stats["served"] += 1
    return item


def serving_group(
    client: ServiceClient, spec: LifecycleSpec, ref: Mapping[str, Any], previous: Any, poll_interval: float, final: bool
) -> tuple[_Group, str, tuple[Any, ...]] | None:
    """The group whose list may serve this poll, with the wait's member id and the group's key; None when the
    poll reads alone. Counts the wait as one of the group's askers."""
    lr: ListRead | None = spec.list_read
    key = None if lr is None or final else lr.group(ref, previous)
    if lr is None or key is None:
        return None
    loop = asyncio.get_running_loop()
    groups = _loop_groups(loop)
    gkey = (spec.key, _share_key(client), key)
    group = groups.get(gkey)
    if group is None:
        group = groups[gkey] = _Group()
    now = loop.time()
    member = lr.member(ref)
    group.askers[member] = now + 2 * poll_interval + ASKER_GRACE
    # A list pays when the waits it may serve (about FRESHNESS of the group's) outnumber its pages.
    if now < group.failed_until or len(group.askers) * FRESHNESS < group.pages:
        return None
    return group, member, gkey


def fresh_items(group: _Group, poll_interval: float) -> dict[str, Any] | None:
    """The group's last list when it is fresh enough for a wait of this poll interval, else None."""
    if group.items is not None and asyncio.get_running_loop().time() - group.fetched_at <= poll_interval * FRESHNESS:
        return group.items
    return None


def joiners_of(
    group: _Group, client: ServiceClient, spec: LifecycleSpec, gkey: tuple[Any, ...], poll_interval: float
) -> list[Any]:
    """The joiners of the group's list in flight, starting one when none is, or it is too old for this wait."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    if group.inflight is None or now - group.inflight_started > poll_interval * FRESHNESS:
        assert spec.list_read is not None
        group.inflight_started = now
        group.joiners = []
        group.inflight = asyncio.ensure_future(
            _fetch_for(
                group.joiners, client, spec, spec.list_read, gkey[2], group, poll_interval, _loop_groups(loop), gkey
            )
        )
    return group.joiners


_last_loop: tuple[weakref.ref[asyncio.AbstractEventLoop] | None, dict[tuple[Any, ...], _Group]] = (None, {})


def _loop_groups(loop: asyncio.AbstractEventLoop) -> dict[tuple[Any, ...], _Group]:
    # Every poll asks for its loop's groups: the last loop's are kept at hand (a WeakKeyDictionary lookup
    # makes a weak reference each time).
    global _last_loop
    last, groups = _last_loop
    if last is not None and last() is loop:
        return groups
    groups = _groups.setdefault(loop, {})
    _last_loop = (weakref.ref(loop), groups)
    return groups


def _share_key(client: ServiceClient) -> str:
    # A client's settings do not change after it is built: its share key is computed once (a digest).
    return client.__dict__.get("_coalesce_share_key") or client.__dict__.setdefault(
        "_coalesce_share_key", client.share_key()
    )


_own_read_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


async def _alone(client: ServiceClient, spec: LifecycleSpec, ref: Mapping[str, Any]) -> Any:
    stats["alone"] += 1
    # Own reads wait for a slot (as many as the client's pool lets in) before anything of the read is made:
    # 10,000 waits starting at once then each hold a future while queueing, not a task, a request and a chain
    # of coroutines (~2.5 KB each).
    slots = _own_read_slots.setdefault(asyncio.get_running_loop(), {})
    share = _share_key(client)
    slot = slots.get(share)
    if slot is None:
        slot = slots[share] = asyncio.Semaphore(max(1, int(client.max_connections)))
    async with slot:
        # In a task of its own: httpcore's anyio backend keeps per-task state (a TaskState and a weak
        # reference) for as long as the task that sent lives, and a wait's task lives as long as the wait.
        return await asyncio.ensure_future(_read(client, spec.read(ref)))


async def _read(client: ServiceClient, req: ApiRequest) -> Any:
    return (await client.arequest(req)).data


async def _fetch_for(joiners: list[Any], *args: Any) -> dict[str, Any] | None:
    items = None
    try:
        items = await _fetch(*args)
        return items
    finally:  # a list that failed or was cancelled answers None: its waits read on their own
        for joined in joiners:
            if isinstance(joined, ListJoiner):
                joined.serve(items)
            elif not joined.done():
                joined.set_result(items)


async def _fetch(
    client: ServiceClient,
    spec: LifecycleSpec,
    lr: ListRead,
    key: Any,
    group: _Group,
    poll_interval: float,
    groups: dict[tuple[Any, ...], _Group],
    gkey: tuple[Any, ...],
) -> dict[str, Any] | None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Its own borrow of the shared pool: the wait that started this list may end before it does.
    fetcher = client.twin()
    try:
        items: dict[str, Any] = {}
        first = lr.request(key)
        pages = 0
        for start in [first] if isinstance(first, ApiRequest) else first:
            req: ApiRequest | None = start
            while req is not None:
                pages += 1
                if pages > MAX_PAGES:
                    raise RuntimeError(f"more than {MAX_PAGES} pages")
                # The page's bytes, decoded below with the collector paused (_collector_paused).
                answer = await fetcher.arequest(replace(req, raw=True))
                stats["list_pages"] += 1
                state, unwrap, in_progress = spec.state, spec.unwrap, spec.in_progress
                item_id, keep = lr.item_id, lr.keep
                with _collector_paused():
                    response = answer.decoded()
                    for item in lr.paging.items(response):
                        if state(unwrap(item)) not in in_progress:
                            continue  # any other state is read on its own
                        ident = item_id(item)
                        if ident is not None:
                            items[ident if type(ident) is str else str(ident)] = (
                                item if keep is None else {k: item[k] for k in keep if k in item}
                            )
                    req = lr.paging.next(req, response)
                    del response  # not held (a page of whole items) while the next page is read
                del answer
    except Exception as exc:  # never a wait's outcome: own reads answer instead
        log.warning("%s: listing %r failed, reading one by one for now: %s", spec.noun, key, exc)
        group.failed_until = loop.time() + poll_interval * FAILURE_PAUSE_INTERVALS
        group.items = None
        return None
    finally:
        await fetcher.aclose()
    group.items, group.fetched_at, group.pages = items, started, pages
    group.lists += 1
    _prune(group, loop.time())
    if not group.askers:
        groups.pop(gkey, None)
    return items


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """CPython's cyclic garbage collector held off while a list page is decoded and reduced to the kept
    fields. A page of thousands of items is ~10 objects each, all alive until reduced: the young collections
    its allocations set off would move them into the oldest generation, and a few pages later CPython walks
    every object of the triggerer (at 10,000 waits, the stall past 0.2 s). Decoded JSON holds no reference
    cycles, so reference counting frees it all. Synchronous: no other wait runs meanwhile. A collector
    turned off elsewhere stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _prune(group: _Group, now: float) -> None:
    for member in [m for m, until in group.askers.items() if until < now]:
        del group.askers[member]
