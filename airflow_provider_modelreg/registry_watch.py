"""An event trigger for an ``AssetWatcher``: every new READY model version of an MLflow-compatible registry
(open-source MLflow or OCI AI Data Platform, ``model-versions/search``) becomes one asset event, so a
deployment DAG also runs for versions registered outside Airflow.

One read per registered model and poll interval, however many watchers: watchers of one model in one
triggerer share the read (:func:`airflow_provider_modelreg.shared_reads.shared_poll`) and the pooled client.

No event twice. Which versions were emitted is a watermark, ``{"through": N, "also": [...]}``: every
version <= N is done (emitted, failed, or existed before the watcher started) and ``also`` lists the
versions above N already emitted (a lower version may still be PENDING_REGISTRATION while a higher one is
READY). Version numbers only grow, so the watermark stays small. It is written *before* its event is
yielded, so a restart never re-emits a version; on Airflow 3.3 it lives in the watched asset's
``asset_state_store`` (which the triggerer injects into event triggers and which survives a triggerer
restart), so a restarted watcher also emits the versions that became READY while it was down. Airflow
3.2 has no store a trigger can write: the watermark is kept in memory, and a restart starts from the
registry as it then is (versions that became READY while the triggerer was down are not emitted; none is
emitted twice). What is not covered: a triggerer dying in the moment between writing the watermark and
Airflow storing the event loses that one event (the price of never doubling one).

Versions present when a watcher first starts are not events (else a new watcher would deploy the whole
history), unless ``emit_existing``; versions still pending then are, once READY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_modelreg import shared_reads
from airflow_provider_modelreg.hooks.mlflow import MODEL_VERSION_LIFECYCLE, SEARCH_PAGE_SIZE, MlflowHook, name_filter
from airflow_provider_modelreg.http import ApiRequest, ServiceClient, ServiceError

READY = "READY"
PENDING = "PENDING_REGISTRATION"
# A shared read serves watchers asking within this fraction of their poll interval of its start.
SHARE_WINDOW = 0.9


def advance(watermark: Mapping[str, Any] | None, versions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The watermark after a read: ``through`` moves up to just below the lowest version still pending
    (or to the highest version, when none is), and ``also`` keeps only emitted versions above it."""
    through = int((watermark or {}).get("through", 0))
    also = {int(v) for v in (watermark or {}).get("also", [])}
    numbers = {int(v["version"]): str(v.get("status")) for v in versions if str(v.get("version", "")).isdigit()}
    pending = [n for n, status in numbers.items() if status == PENDING and n > through and n not in also]
    ceiling = min(pending) - 1 if pending else max([through, *numbers])
    return {"through": max(through, ceiling), "also": sorted(n for n in also if n > max(through, ceiling))}


def is_new(watermark: Mapping[str, Any], version: int) -> bool:
    return version > int(watermark.get("through", 0)) and version not in set(watermark.get("also", []))


def with_emitted(watermark: Mapping[str, Any], version: int) -> dict[str, Any]:
    return {"through": int(watermark.get("through", 0)), "also": sorted({*watermark.get("also", []), version})}


class MlflowRegistryEventTrigger(BaseEventTrigger):
    """Fires once for every model version of ``name`` that becomes READY (for an ``AssetWatcher``).

    The event's payload (the asset event's ``extra["payload"]``): ``name``, ``version``, ``status``,
    ``run_id``, ``source``, ``creation_timestamp`` and ``conn_id``.

    :param name: the registered model to watch.
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    :param poll_interval: seconds between two reads of the registry (default 60).
    :param emit_existing: also emit the versions READY when the watcher first starts (default false).
    """

    def __init__(
        self,
        *,
        name: str,
        conn_id: str = MlflowHook.default_conn_name,
        poll_interval: float = 60.0,
        emit_existing: bool = False,
    ) -> None:
        super().__init__()
        if not name or not str(name).strip():
            raise ValueError("name: the registered model to watch must not be empty")
        if float(poll_interval) <= 0:
            raise ValueError("poll_interval: must be > 0 seconds")
        self.name = str(name)
        # Written once, here: a name no filter can select would be refused now, before anything is sent.
        self._filter = name_filter(self.name)
        self.conn_id = conn_id
        self.poll_interval = float(poll_interval)
        self.emit_existing = bool(emit_existing)
        self._memory: dict[str, Any] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "emit_existing": self.emit_existing,
            },
        )

    @property
    def state_key(self) -> str:
        return f"modelreg.registry_watch.{self.conn_id}.{self.name}"

    # -- the watermark: the asset's state store on Airflow 3.3, memory on 3.2 ----------------------------
    def _stores(self) -> list[Any]:
        from airflow_provider_modelreg.version_compat import asset_state_store

        store = asset_state_store(self)  # None before Airflow 3.3 (said once)
        if store is None:
            return []
        # One trigger can back several assets (identical watchers are one trigger): keep it on each.
        accessors = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
        return accessors or [store]

    async def load_watermark(self) -> dict[str, Any] | None:
        for store in self._stores():
            value = await store.aget(self.state_key)
            if isinstance(value, Mapping):
                return dict(value)
        return self._memory

    async def save_watermark(self, watermark: dict[str, Any]) -> None:
        self._memory = watermark
        for store in self._stores():
            await store.aset(self.state_key, watermark)

    # -- reading the registry -------------------------------------------------------------------------------
    async def _client(self) -> tuple[ServiceClient, str]:
        from airflow_provider_modelreg.version_compat import aget_connection

        conn = await aget_connection(self.conn_id)
        client = await asyncio.to_thread(MlflowHook.async_client_from_connection, conn)
        return client, MlflowHook.api_prefixes(conn)[1]

    async def read_versions(self, client: ServiceClient, registry_api: str) -> list[dict[str, Any]]:
        """Every version of the model, page by page, selected by the hooks' one name filter (``name_filter``:
        a quoted literal, or ``LIKE`` for a name holding both quote characters, which MLflow takes as a name
        but its filter grammar cannot quote). A ``LIKE`` may also select other models: only this one's
        versions are kept."""
        lr = MODEL_VERSION_LIFECYCLE.list_read
        assert lr is not None
        params = {"filter": self._filter, "max_results": SEARCH_PAGE_SIZE}
        req: ApiRequest | None = ApiRequest("GET", f"{registry_api}/model-versions/search", params=params)
        versions: list[dict[str, Any]] = []
        while req is not None:
            response = await client.arequest(req)
            versions += [v for v in lr.paging.items(response) if isinstance(v, Mapping) and v.get("name") == self.name]
            req = lr.paging.next(req, response)
        return versions

    async def _read_shared(self, client: ServiceClient, registry_api: str) -> list[dict[str, Any]]:
        # Its own borrow of the pool: the watcher that started the read may be cancelled before it ends.
        reader = client.twin()
        try:
            return await self.read_versions(reader, registry_api)
        finally:
            await reader.aclose()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client, registry_api = await self._client()
        share = ("mlflow-registry", client.share_key(), registry_api, self.name)
        try:
            watermark = await self.load_watermark()
            while True:
                try:
                    versions = await shared_reads.shared_poll(
                        share,
                        lambda: self._read_shared(client, registry_api),
                        max_age=self.poll_interval * SHARE_WINDOW,
                    )
                except ServiceError as exc:
                    if not exc.retryable:
                        raise
                    self.log.warning(
                        "Registry %r could not be read (%s); next read in %ss", self.name, exc, self.poll_interval
                    )
                    await asyncio.sleep(self.poll_interval)
                    continue
                if watermark is None:
                    # First start: what is in the registry now is history, not news (unless emit_existing).
                    watermark = {"through": 0, "also": []} if self.emit_existing else self._baseline(versions)
                    await self.save_watermark(watermark)
                for version in sorted(versions, key=lambda v: int(v["version"])):
                    number = int(version["version"])
                    if version.get("status") != READY or not is_new(watermark, number):
                        continue
                    watermark = with_emitted(watermark, number)
                    await self.save_watermark(watermark)  # before the event: a restart never repeats it
                    self.log.info("Model %r version %s is READY: emitting an asset event", self.name, number)
                    yield TriggerEvent(self._payload(version))
                settled = advance(watermark, versions)
                if settled != watermark:
                    watermark = settled
                    await self.save_watermark(watermark)
                await asyncio.sleep(self.poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    @staticmethod
    def _baseline(versions: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything present is done, except versions still pending (they emit once READY)."""
        return advance(
            {"through": 0, "also": [int(v["version"]) for v in versions if v.get("status") == READY]}, versions
        )

    def _payload(self, version: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": str(version["version"]),
            "status": version.get("status"),
            "run_id": version.get("run_id"),
            "source": version.get("source"),
            "creation_timestamp": version.get("creation_timestamp"),
            "conn_id": self.conn_id,
        }
