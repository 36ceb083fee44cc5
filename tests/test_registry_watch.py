"""The registry watcher: one asset event per model version that becomes READY, never two, one read per
registered model however many watchers, and a restart that resumes from the watermark it kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fixtures.mlflow import HOOK_CONN_ID

from airflow_provider_modelreg import shared_reads
from airflow_provider_modelreg.http import ServiceClient
from airflow_provider_modelreg.models.mlflow import CreateModelVersionRequest, CreateRegisteredModelRequest
from airflow_provider_modelreg.registry_watch import MlflowRegistryEventTrigger, advance

pytestmark = pytest.mark.integration


class AssetStore:
    """Stands in for the asset state store the 3.3 triggerer injects (``aget``/``aset``), kept across
    trigger instances as the metadata DB keeps it across triggerer restarts."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def register(target: Any, name: str, count: int = 1) -> list[str]:
    hook = target.hook()
    hook.ensure_registered_model(CreateRegisteredModelRequest(name=name))
    return [
        str(hook.create_model_version(CreateModelVersionRequest(name=name, source=f"s3://models/{name}"))["version"])
        for _ in range(count)
    ]


def wait_ready(target: Any, name: str, version: str = "1") -> None:
    """Until the version is READY (the AI Data Platform sandbox registers for a second first)."""
    import time

    hook = target.hook()
    deadline = time.monotonic() + 20
    while hook.get_model_version(name, version).get("status") != "READY":
        assert time.monotonic() < deadline
        time.sleep(0.1)


class Watch:
    """Runs triggers in one event loop (as one triggerer does) and collects their events."""

    def __init__(self, *triggers: MlflowRegistryEventTrigger) -> None:
        self.triggers = triggers
        self.events: list[list[dict[str, Any]]] = [[] for _ in triggers]
        self.tasks: list[asyncio.Task[None]] = []
        # What each trigger has done, for waits on conditions: registry reads it made, watermarks it saved.
        self.reads = [0] * len(triggers)
        self.saves = [0] * len(triggers)
        for index, trigger in enumerate(triggers):
            self._count(index, trigger)

    def _count(self, index: int, trigger: MlflowRegistryEventTrigger) -> None:
        read, save = trigger.read_versions, trigger.save_watermark

        async def counted_read(*args: Any) -> Any:
            versions = await read(*args)
            self.reads[index] += 1
            return versions

        async def counted_save(watermark: dict[str, Any]) -> None:
            await save(watermark)
            self.saves[index] += 1

        trigger.read_versions = counted_read  # type: ignore[method-assign]
        trigger.save_watermark = counted_save  # type: ignore[method-assign]

    async def baseline(self) -> None:
        """Until every watcher has read the registry once and saved what it found as history."""
        await self.until(lambda: all(self.saves))

    async def quiet_reads(self, reads: int) -> None:
        """Until every watcher has read the registry ``reads`` more times (after which: no new events)."""
        wanted = [n + reads for n in self.reads]
        await self.until(lambda: all(n >= w for n, w in zip(self.reads, wanted, strict=True)))

    async def _collect(self, index: int) -> None:
        async for event in self.triggers[index].run():
            self.events[index].append(event.payload)

    def start(self) -> None:
        self.tasks = [asyncio.ensure_future(self._collect(i)) for i in range(len(self.triggers))]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]

    async def until(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"timed out; events so far: {self.events}"
            await asyncio.sleep(0.1)


def versions(events: list[dict[str, Any]]) -> list[str]:
    return [e["version"] for e in events]


def test_each_new_ready_version_is_one_event(mlflow_target):
    name = mlflow_target.unique("watched")
    register(mlflow_target, name)  # version 1 is READY before the watcher starts: history, not news
    wait_ready(mlflow_target, name)

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(MlflowRegistryEventTrigger(name=name, conn_id=HOOK_CONN_ID, poll_interval=0.2))
        watch.start()
        await watch.baseline()  # the first read has set the baseline
        await asyncio.to_thread(register, mlflow_target, name, 2)
        await watch.until(lambda: len(watch.events[0]) >= 2)
        await watch.quiet_reads(5)  # five more reads: nothing is emitted again
        await watch.stop()
        return watch.events[0]

    events = asyncio.run(scenario())
    assert versions(events) == ["2", "3"]
    # On the AI Data Platform sandbox versions are PENDING_REGISTRATION first: emitted once READY.
    assert {e["status"] for e in events} == {"READY"}
    assert events[0]["name"] == name and events[0]["source"] == f"s3://models/{name}"
    assert events[0]["conn_id"] == HOOK_CONN_ID


def test_a_restarted_watcher_resumes_from_its_watermark_and_repeats_nothing(aidp_target):
    name = aidp_target.unique("restarted")
    register(aidp_target, name)
    wait_ready(aidp_target, name)
    store = AssetStore()

    def trigger() -> MlflowRegistryEventTrigger:
        rebuilt = MlflowRegistryEventTrigger(
            **MlflowRegistryEventTrigger(name=name, conn_id=HOOK_CONN_ID, poll_interval=0.2).serialize()[1]
        )
        rebuilt.asset_state_store = store  # injected by the triggerer before run()
        return rebuilt

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        first = Watch(trigger())
        first.start()
        await first.baseline()
        await asyncio.to_thread(register, aidp_target, name)  # version 2
        await first.until(lambda: len(first.events[0]) == 1)
        await first.stop()  # the triggerer goes down
        await asyncio.to_thread(register, aidp_target, name)  # version 3, while nobody watches
        await asyncio.to_thread(wait_ready, aidp_target, name, "3")  # READY before the watcher is back
        second = Watch(trigger())
        second.start()
        await second.until(lambda: len(second.events[0]) == 1)
        await second.quiet_reads(5)
        await second.stop()
        return first.events[0], second.events[0]

    before, after = asyncio.run(scenario())
    assert versions(before) == ["2"]
    assert versions(after) == ["3"]  # not 1 (history), not 2 (already emitted)
    assert store.values == {f"modelreg.registry_watch.{HOOK_CONN_ID}.{name}": {"through": 3, "also": []}}


def test_watchers_of_one_model_share_one_read_per_interval(aidp_target, monkeypatch):
    name = aidp_target.unique("shared")
    register(aidp_target, name)
    wait_ready(aidp_target, name)
    searches: list[str] = []
    real = ServiceClient.arequest

    async def counting(self: ServiceClient, req: Any) -> Any:
        if req.path.endswith("/model-versions/search"):
            searches.append(req.params["filter"])
        return await real(self, req)

    monkeypatch.setattr(ServiceClient, "arequest", counting)
    interval, watchers, seconds = 0.5, 6, 3.0

    async def scenario() -> list[list[dict[str, Any]]]:
        watch = Watch(
            *[
                MlflowRegistryEventTrigger(name=name, conn_id=HOOK_CONN_ID, poll_interval=interval)
                for _ in range(watchers)
            ]
        )
        watch.start()
        await watch.baseline()
        await asyncio.to_thread(register, aidp_target, name)
        await watch.until(lambda: all(len(e) == 1 for e in watch.events))
        await asyncio.sleep(seconds - 1.0)  # a window of time whose reads are counted: what is measured
        await watch.stop()
        return watch.events

    started = shared_reads.stats.get("shared_polls", 0)
    began = time.monotonic()
    events = asyncio.run(scenario())
    elapsed = time.monotonic() - began
    assert [versions(e) for e in events] == [["2"]] * watchers
    elapsed_reads = len(searches)
    # Unshared, six watchers would read about 6 x (elapsed / interval) times; shared, once per interval. The
    # bound follows the time the run took (waiting for the baseline and the event takes longer under load).
    assert elapsed_reads <= elapsed / interval + 2, (searches, elapsed)
    assert shared_reads.stats["shared_polls"] - started == elapsed_reads


def test_the_trigger_serialises_to_primitives_and_backs_an_asset_watcher():
    from airflow.sdk import Asset, AssetWatcher

    # [START howto_trigger_mlflow_registry_event]
    trigger = MlflowRegistryEventTrigger(name="fraud-model", conn_id="oci_aidp_default", poll_interval=30)
    # [END howto_trigger_mlflow_registry_event]
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_modelreg.registry_watch.MlflowRegistryEventTrigger"
    assert kwargs == {
        "name": "fraud-model",
        "conn_id": "oci_aidp_default",
        "poll_interval": 30.0,
        "emit_existing": False,
    }
    # [START howto_asset_watcher_mlflow_registry_event]
    asset = Asset("modelreg/fraud-model", watchers=[AssetWatcher(name="fraud-model-versions", trigger=trigger)])
    # [END howto_asset_watcher_mlflow_registry_event]
    assert asset.watchers[0].trigger is trigger
    with pytest.raises(ValueError, match="name"):
        MlflowRegistryEventTrigger(name=" ")


@pytest.mark.parametrize(
    ("seen", "listed", "expected"),
    [
        # a lower version still pending holds the watermark below it; the emitted higher one is remembered
        (
            {"through": 1, "also": [3]},
            [(1, "READY"), (2, "PENDING_REGISTRATION"), (3, "READY")],
            {"through": 1, "also": [3]},
        ),
        # once it is done (emitted, or failed) the watermark moves past every version
        ({"through": 1, "also": [2, 3]}, [(1, "READY"), (2, "READY"), (3, "READY")], {"through": 3, "also": []}),
        ({"through": 1, "also": [3]}, [(2, "FAILED_REGISTRATION"), (3, "READY")], {"through": 3, "also": []}),
        # deleted versions leave gaps; the watermark never moves back
        ({"through": 7, "also": []}, [(2, "READY")], {"through": 7, "also": []}),
    ],
)
def test_the_watermark_advances_past_done_versions_only(seen, listed, expected):
    assert advance(seen, [{"version": str(v), "status": s} for v, s in listed]) == expected


def test_a_version_pending_when_the_watcher_starts_is_an_event_once_ready(aidp_target):
    name = aidp_target.unique("pending-at-start")
    register(aidp_target, name)  # PENDING_REGISTRATION for a second on the AI Data Platform sandbox

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(MlflowRegistryEventTrigger(name=name, conn_id=HOOK_CONN_ID, poll_interval=0.2))
        watch.start()
        await watch.until(lambda: len(watch.events[0]) == 1)
        await watch.quiet_reads(5)
        await watch.stop()
        return watch.events[0]

    assert versions(asyncio.run(scenario())) == ["1"]


QUOTED_NAMES = {
    "single": "it's",
    "double": 'say "hi"',
    # MLflow takes it as a name; its filter grammar has no escape for either quote: found with LIKE.
    "both": """say "hi" it's""",
}


@pytest.mark.parametrize("kind", list(QUOTED_NAMES))
def test_a_name_holding_quotes_is_watched_and_only_its_own_versions_are_events(mlflow_target, kind):
    name = mlflow_target.unique("quoted") + " " + QUOTED_NAMES[kind]
    # A model a LIKE written for the name would also select ('_' takes any one character): never an event.
    sibling = name.replace("'", "_") + ("" if kind == "both" else "-other")
    for model in (name, sibling):
        register(mlflow_target, model)
        wait_ready(mlflow_target, model)

    async def scenario() -> list[dict[str, Any]]:
        watch = Watch(MlflowRegistryEventTrigger(name=name, conn_id=HOOK_CONN_ID, poll_interval=0.2))
        watch.start()
        await watch.baseline()
        await asyncio.to_thread(register, mlflow_target, sibling)
        await asyncio.to_thread(register, mlflow_target, name)  # version 2 of the watched model
        await watch.until(lambda: len(watch.events[0]) >= 1)
        await asyncio.to_thread(wait_ready, mlflow_target, sibling, "2")
        await watch.quiet_reads(3)  # the sibling's READY version 2 has been read: still no event for it
        await watch.stop()
        return watch.events[0]

    events = asyncio.run(scenario())
    assert [(e["name"], e["version"]) for e in events] == [(name, "2")]


def test_a_name_no_registry_can_hold_is_refused_when_the_watcher_is_made_and_nothing_is_sent(monkeypatch):
    sent: list[Any] = []

    async def record(self: ServiceClient, req: Any) -> Any:
        sent.append(req)
        raise AssertionError("nothing may be sent")

    monkeypatch.setattr(ServiceClient, "arequest", record)
    for blank in ("", " ", "\n"):
        with pytest.raises(ValueError, match=r"^name: the registered model to watch must not be empty"):
            MlflowRegistryEventTrigger(name=blank, conn_id=HOOK_CONN_ID)
    assert sent == []
