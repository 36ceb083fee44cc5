"""Shared polls: one read for every caller of an event loop asking for the same thing within a while.

The registry watcher (:mod:`airflow_provider_modelreg.registry_watch`) reads each registered model once per
interval however many watchers ask. A mechanism of its own, beside the coalesced list reads
(:mod:`airflow_provider_modelreg.coalesce`): it knows no spec, only a key and a fetch.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

# Counter for tests and benchmarks: fetches started (each shared by every caller within its max_age).
stats = {"shared_polls": 0}


@dataclass
class _Poll:
    started: float
    result: asyncio.Future[Any]


_polls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, _Poll]] = weakref.WeakKeyDictionary()


async def shared_poll(key: Hashable, fetch: Callable[[], Any], *, max_age: float) -> Any:
    """One ``fetch()`` (a coroutine function) for every caller of one event loop asking for ``key`` within
    ``max_age`` seconds of its start: watchers of one registered model share a single read per interval.

    A fetch that failed is not reused (the next caller fetches anew); each joiner gets its exception.
    """
    loop = asyncio.get_running_loop()
    polls = _polls.setdefault(loop, {})
    now = loop.time()
    poll = polls.get(key)
    if poll is None or now - poll.started > max_age or (poll.result.done() and poll.result.exception()):
        poll = polls[key] = _Poll(now, asyncio.ensure_future(fetch()))
        stats["shared_polls"] += 1
    return await asyncio.shield(poll.result)
