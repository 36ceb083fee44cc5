"""The loop's shared ticks and parked waits: sleeping waits share timers, parked ones poll through their list."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from fixtures.happyrobot_waits import create_batch, run_all, waits_on

from airflow_provider_modelreg import coalesce, ticks
from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE


def test_sleeping_waits_share_ticks_each_waking_at_or_after_its_own_time():
    async def run() -> tuple[list[float], bool]:
        loop = asyncio.get_running_loop()
        delays = [0.05, 0.051, 0.07, 0.12, 0.2]

        async def sleeper(delay: float) -> float:
            started = loop.time()
            await ticks.sleep(delay)
            return loop.time() - started - delay

        cancelled = asyncio.ensure_future(sleeper(0.05))  # shares a tick with the first two
        tasks = [asyncio.ensure_future(sleeper(d)) for d in delays]
        await asyncio.sleep(0)
        cancelled.cancel()
        late = await asyncio.gather(*tasks)
        return late, cancelled.cancelled()

    late, cancelled = asyncio.run(run())
    assert cancelled
    # Never early, the clock's resolution aside (asyncio's loop names it; uvloop's, where a venv's Airflow
    # installs it as the policy, does not: the monotonic clock's then). How late is the machine's load, so
    # no upper bound is asserted here (the triggerer benchmark measures it).
    loop = asyncio.new_event_loop()
    slack = getattr(loop, "_clock_resolution", time.get_clock_info("monotonic").resolution)
    loop.close()
    assert all(x >= -slack for x in late), late


@pytest.mark.integration
def test_parked_waits_poll_unchanged_resources_without_making_a_future_per_poll(sandbox, monkeypatch, happyrobot_conn):
    # Each future a poll makes lives through the sleep after it, long enough to reach the collector's oldest
    # generation; enough of those and CPython walks every object of the triggerer (a stall past 0.2 s at
    # 10,000 waits). Parked, a poll that finds its resource unchanged makes none.
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    lifecycles = sandbox.sandbox.state.lifecycle_seconds
    lifecycles["happyrobot"] = 3600.0  # in progress until released below, however slow the machine is
    batch = {model_id: label for model_id, label in create_batch("pk").items() if label != "missing"}
    made = [0]  # futures made by the waits' own tasks (the lists' and own reads' tasks make theirs)
    original = asyncio.BaseEventLoop.create_future

    def counting(self: asyncio.AbstractEventLoop) -> asyncio.Future[Any]:
        task = asyncio.current_task(self)
        if task is not None and task.get_coro().__qualname__.startswith("run_all."):
            made[0] += 1
        return original(self)

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_future", counting)
    before = dict(coalesce.stats)
    pairs = waits_on(batch, spec=MODEL_LIFECYCLE.key, conn_id="hr", end_time=time.time() + 600)
    polls_wanted = 20 * len(pairs)

    async def run() -> dict[str, dict[str, Any]]:
        waits = asyncio.ensure_future(run_all(pairs))
        # A number of polls, not a time: a loaded machine polls less often and only takes longer here.
        deadline = time.monotonic() + 300
        while coalesce.stats["served"] - before["served"] < polls_wanted and not waits.done():
            assert time.monotonic() < deadline, ("too few polls", coalesce.stats["served"] - before["served"])
            await asyncio.sleep(0.05)
        lifecycles["happyrobot"] = 0.0  # every model done: the waits end
        return await waits

    events = asyncio.run(run())
    served = coalesce.stats["served"] - before["served"]
    assert {e["status"] for e in events.values()} == {"success"}
    assert served >= polls_wanted, served  # ~20 polls each, nearly all served by the lists
    # A few per wait (its first read, one park per state it passes through), however many polls it made.
    assert made[0] <= 6 * len(pairs), (made[0], served)
