"""The loop's shared ticks and parked waits: how a deferred wait sleeps between polls, cheaply.

Sleeping waits share one timer per tick (:func:`sleep`); a wait whose spec lists in bulk is *parked*
(:func:`park`): its polls are made by the ticks through its group's list (:mod:`airflow_provider_modelreg.coalesce`)
and its task wakes only when a poll shows something new. Read by the trigger
(:mod:`airflow_provider_modelreg.lifecycle`); reads the spec and the coalescer, never the trigger.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg import coalesce

if TYPE_CHECKING:
    from airflow_provider_modelreg.http import ServiceClient
    from airflow_provider_modelreg.spec import LifecycleSpec


# -- one timer per tick, shared by every sleeping wait of the loop -------------------------------------------
# A wait sleeping between two polls costs, with asyncio.sleep, a coroutine, a future, a timer handle, a copy
# of its context and a Python-level heap comparison per push and pop among 10,000 timers. Here the waits due
# in one tick share one timer: each holds only its own future, woken at or after its own time (never early,
# at most TICK late), so each keeps its own poll interval and deadline.
TICK = 1 / 32


class _Ticks:
    # Holds no reference to its loop: it is the value of a WeakKeyDictionary keyed by that loop.
    __slots__ = ("context", "due")

    def __init__(self) -> None:
        self.due: dict[int, list[asyncio.Future[None]]] = {}
        self.context = contextvars.Context()  # the timer callbacks run in no wait's context

    def sleep(self, loop: asyncio.AbstractEventLoop, delay: float) -> asyncio.Future[None]:
        future = loop.create_future()
        self.schedule(loop, delay, future)
        return future

    def schedule(self, loop: asyncio.AbstractEventLoop, delay: float, sleeper: Any) -> None:
        """Wake ``sleeper`` (a future, resolved; or a parked wait, checked) ``delay`` seconds from now."""
        slot = math.ceil((loop.time() + delay) / TICK)
        sleepers = self.due.get(slot)
        if sleepers is None:
            sleepers = self.due[slot] = []
            loop.call_at(slot * TICK, self._wake, slot, context=self.context)
        sleepers.append(sleeper)

    def _wake(self, slot: int) -> None:
        for sleeper in self.due.pop(slot, ()):
            if type(sleeper) is _Parked:
                sleeper.check()
            elif not sleeper.done():  # a cancelled wait cancelled its own future, nobody else's
                sleeper.set_result(None)


_ticks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticks] = weakref.WeakKeyDictionary()
_last_ticks: tuple[weakref.ref[asyncio.AbstractEventLoop] | None, _Ticks] = (None, _Ticks())


def _loop_ticks(loop: asyncio.AbstractEventLoop) -> _Ticks:
    global _last_ticks
    last, ticks = _last_ticks
    if last is None or last() is not loop:
        ticks = _ticks.get(loop) or _ticks.setdefault(loop, _Ticks())
        _last_ticks = (weakref.ref(loop), ticks)
    return ticks


def sleep(delay: float) -> asyncio.Future[None]:
    """``await sleep(delay)`` is ``await asyncio.sleep(delay)`` for a waiting trigger, on the loop's shared
    ticks (a future, not a coroutine: one object fewer per sleeping wait)."""
    loop = asyncio.get_running_loop()
    return _loop_ticks(loop).sleep(loop, delay)


# -- parked waits ---------------------------------------------------------------------------------------------
# A wait that sleeps and polls anew makes, per poll, a future, its awaiting iterator and the task's wake-up
# callback, all living through the sleep: the young-generation collections that run meanwhile move them to
# the oldest generation, and when enough have moved CPython walks every object of the process (a full
# collection: at 10,000 waits, a stall past 0.2 s). A parked wait is polled by the loop's ticks instead:
# its task awaits one future until a poll shows something new, and a poll that finds the resource as it was
# makes nothing that outlives it, so waiting in the steady state moves nothing to the oldest generation.


@dataclass(slots=True, eq=False)
class _Parked(coalesce.ListJoiner):
    """One wait between polls, for as long as its group's list shows its resource unchanged."""

    future: asyncio.Future[Any]
    client: ServiceClient
    spec: LifecycleSpec
    ref: Mapping[str, Any]
    member: str  # the wait's id in its group's list (ListRead.member), made once
    seen: Any
    poll_interval: float
    end_time: float

    def check(self) -> None:
        """A poll, at the tick the wait is due: served from its group's list, or handed back to the wait."""
        future = self.future
        if future.done():  # the wait was cancelled
            return
        try:
            # At or after the deadline the read goes alone (aread's ``final``): handed back.
            serving = None
            if time.time() < self.end_time:
                serving = coalesce.serving_group(self.client, self.spec, self.ref, self.seen, self.poll_interval, False)
            if serving is None:
                future.set_result(None)
                return
            group, _member, gkey = serving
            snapshot = coalesce.fresh_items(group, self.poll_interval)
            if snapshot is None:
                coalesce.joiners_of(group, self.client, self.spec, gkey, self.poll_interval).append(self)
            else:
                self.serve(snapshot)
        except BaseException as exc:  # never lost in the ticks' callback: the wait raises it
            future.set_exception(exc)

    def serve(self, items: dict[str, Any] | None) -> None:
        """The group's list answered: wait on while it shows the resource as last seen, else hand it back."""
        future = self.future
        if future.done():
            return
        try:
            spec = self.spec
            item = None if items is None else items.get(self.member)
            if item is None:  # missing from the list, or the list failed: the wait reads alone
                future.set_result(None)
                return
            coalesce.stats["served"] += 1
            remaining = self.end_time - time.time()
            if remaining <= 0 or coalesce.remembered(spec, spec.unwrap(item)) != self.seen:
                future.set_result(item)  # the wait evaluates it: a new state, or its deadline passed
                return
            loop = future.get_loop()
            _loop_ticks(loop).schedule(loop, min(self.poll_interval, max(remaining, 0.01)), self)
        except BaseException as exc:
            future.set_exception(exc)


def park(
    client: ServiceClient,
    spec: LifecycleSpec,
    ref: Mapping[str, Any],
    *,
    seen: Any,
    pause: float,
    poll_interval: float,
    end_time: float,
) -> asyncio.Future[Any]:
    """Sleep ``pause``, then poll every ``poll_interval`` through the wait's group list for as long as that
    shows the resource as ``seen`` (``remembered`` of the last observation). The future resolves with the
    data of the first served poll showing anything else (or coming at or after ``end_time``), to be
    evaluated as :func:`coalesce.aread`'s answer; or with None when the next poll is ``aread``'s to make
    now (no list serves it, the resource is missing from the list, or the deadline has come). Served polls
    count in ``coalesce.stats["served"]`` as aread's do.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    lr = spec.list_read
    sleeper: Any = future
    if lr is not None:
        sleeper = _Parked(future, client, spec, ref, lr.member(ref), seen, poll_interval, end_time)
    _loop_ticks(loop).schedule(loop, pause, sleeper)
    return future
