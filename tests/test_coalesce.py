"""Coalesced reads: one list serves many deferred waits, with the outcomes individual reads give."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import re
import time
from typing import Any

import httpx
import pytest
from fixtures.happyrobot_waits import WAITS, create_batch, run_all, waits_on

from airflow_provider_modelreg import coalesce, lifecycle
from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
from airflow_provider_modelreg.http import ServiceClient
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.sandbox import happyrobot as sandbox_happyrobot
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.spec import resolve_spec


def timing_out(label: str) -> bool:
    return label != "missing" and int(label) % 3 == 0


def held_in_training(monkeypatch: pytest.MonkeyPatch, held: set[str]) -> None:
    """The sandbox's HappyRobot models with these ids stay in training: a wait on one times out having seen
    "training", whenever its deadline falls (a model's lifecycle runs on wall time, a wait's deadline too, and
    on a loaded machine creating the batch alone can take longer than a short wait's head start)."""
    original = sandbox_happyrobot.phase

    def phase(record: dict[str, Any], *args: Any) -> str:
        return "training" if record.get("id") in held else original(record, *args)

    monkeypatch.setattr(sandbox_happyrobot, "phase", phase)


def triggers_for(batch: dict[str, str], interval: float = 0.1) -> list[tuple[str, LifecycleTrigger]]:
    now = time.time()
    out = []
    for model_id, label in batch.items():
        # Every third wait times out (its model is held in training, see held_in_training); the others end
        # with their models, long before a deadline a loaded machine could reach.
        end_time = now + (0.5 if timing_out(label) else 300)
        out.append(
            (
                label,
                LifecycleTrigger(
                    spec=MODEL_LIFECYCLE.key,
                    conn_id="hr",
                    ref={"model_id": model_id},
                    # Each wait its own interval, long beside a list's round trip on a loaded machine: a list
                    # serves the waits asking within a quarter interval of its start (coalesce.FRESHNESS).
                    poll_interval=interval + 0.2 * interval * (hash(label) % 3),
                    end_time=end_time,
                ),
            )
        )
    return out


def normalised(events: dict[str, dict[str, Any]], batch: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(events, sort_keys=True)
    for model_id, label in batch.items():
        text = text.replace(model_id, f"<{label}>")
    return json.loads(re.sub(r"request id: [0-9A-Fa-f-]+", "request id: <id>", text))  # ids differ per request


@pytest.mark.integration
def test_coalesced_and_individual_reads_give_every_wait_the_same_outcome(sandbox, monkeypatch, happyrobot_conn):
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn))
    state = sandbox.sandbox.state
    state.lifecycle_seconds["happyrobot"] = 2.0
    state.outcome_rules.append(OutcomeRule(service="happyrobot", match="doomed", reason="bad labels"))
    sends = [0]
    original = ServiceClient.arequest

    async def counted(self: ServiceClient, req: Any) -> Any:
        sends[0] += 1
        return await original(self, req)

    monkeypatch.setattr(ServiceClient, "arequest", counted)
    held: set[str] = set()
    held_in_training(monkeypatch, held)

    def run(mode: str) -> tuple[dict[str, Any], int, dict[str, int]]:
        batch = create_batch(mode)
        # Every model in training until the waits have polled a few times each (a count, not a time: on a
        # loaded machine creating the batch can outlast a wall-clock lifecycle); then all but the timing-out
        # waits' models end.
        held.update(model_id for model_id, label in batch.items() if label != "missing")
        sends[0] = 0
        before = dict(coalesce.stats)

        async def waits_then_release() -> dict[str, dict[str, Any]]:
            waits = asyncio.ensure_future(run_all(triggers_for(batch, interval=1.0)))
            deadline = time.monotonic() + 300
            while coalesce.stats["served"] + coalesce.stats["alone"] - before["served"] - before["alone"] < 5 * WAITS:
                assert time.monotonic() < deadline and not waits.done(), "the waits stopped polling"
                await asyncio.sleep(0.05)
            held.difference_update(model_id for model_id, label in batch.items() if not timing_out(label))
            return await waits

        events = asyncio.run(waits_then_release())
        return normalised(events, batch), sends[0], {k: coalesce.stats[k] - before[k] for k in before}

    coalesced, coalesced_sends, coalesced_stats = run("co")
    individual_spec = dataclasses.replace(MODEL_LIFECYCLE, list_read=None)
    monkeypatch.setattr(
        lifecycle, "resolve_spec", lambda key: individual_spec if key == MODEL_LIFECYCLE.key else resolve_spec(key)
    )
    individual, individual_sends, individual_stats = run("in")

    assert coalesced == individual
    expected = {str(i): "timeout" if i % 3 == 0 else "failure" if i % 4 == 3 else "success" for i in range(WAITS)}
    assert {label: e["status"] for label, e in individual.items()} == expected | {"missing": "error"}
    assert all(
        e["message"].endswith("ended failed: bad labels") for e in individual.values() if e["status"] == "failure"
    )
    assert individual_stats["served"] == 0 and individual_stats["list_pages"] == 0
    assert coalesced_stats["served"] > 0 and coalesced_stats["list_pages"] > 0, (coalesced_stats, individual_stats)
    # Fewer requests than wait-polls (a list served several waits at once). Not "fewer than the individual run
    # sent": how often each wait polls there depends on how fast the sandbox answers, i.e. on the machine's load.
    coalesced_polls = coalesced_stats["served"] + coalesced_stats["alone"]
    assert coalesced_sends < coalesced_polls, (coalesced_sends, coalesced_stats)
    assert individual_sends >= individual_stats["alone"]  # every own read is a request


@pytest.mark.integration
def test_a_failing_list_falls_back_to_own_reads(sandbox, monkeypatch, happyrobot_conn):
    monkeypatch.setenv("AIRFLOW_CONN_HR", json.dumps(happyrobot_conn | {"extra": {"retry_max_attempts": 1}}))
    sandbox.sandbox.state.lifecycle_seconds["happyrobot"] = 1.0
    sandbox.sandbox.faults.rules.append(
        FaultRule(kind="status", status=500, method="GET", path="^/api/v1/models$", count=None)
    )
    batch = create_batch("fb")
    batch.pop("f" * 24)
    before = dict(coalesce.stats)
    pairs = [(label, t) for label, t in triggers_for(batch) if int(label) % 3 and int(label) % 4 != 3]
    events = asyncio.run(run_all(pairs))
    assert {e["status"] for e in events.values()} == {"success"}
    assert coalesce.stats["served"] == before["served"]


@pytest.mark.integration
def test_oci_vision_waits_share_one_list_per_compartment_and_project_with_the_same_outcomes(
    sandbox, monkeypatch, oci_vision_hook
):
    from fixtures.oci_vision import vision_arguments

    from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE as OCI_MODEL
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    sandbox.sandbox.state.lifecycle_seconds["oci_vision"] = 300  # every wait ends at its deadline
    ids = [
        oci_vision_hook.create_model(
            validate_request(CreateModelDetails, vision_arguments(display_name=f"m{i}"))
        ).model["id"]
        for i in range(12)  # a list pays from four waits per page (two lists here)
    ]

    def run(spec_key_spec: Any) -> tuple[list[dict[str, Any]], dict[str, int]]:
        monkeypatch.setattr(
            lifecycle, "resolve_spec", lambda key: spec_key_spec if key == OCI_MODEL.key else resolve_spec(key)
        )
        before = dict(coalesce.stats)
        end = time.time() + 8.0  # OCI key loading per trigger is slow on a busy machine
        pairs = waits_on({i: i for i in ids}, spec=OCI_MODEL.key, conn_id="oci_vision_test", end_time=end)
        events = asyncio.run(run_all(pairs))
        return [events[i] for i in ids], {k: coalesce.stats[k] - before[k] for k in before}

    coalesced, stats = run(OCI_MODEL)
    individual, _ = run(dataclasses.replace(OCI_MODEL, list_read=None))
    assert coalesced == individual
    assert {e["status"] for e in coalesced} == {"timeout"}
    assert stats["served"] > 0 and stats["list_pages"] > 0


def test_long_lists_are_decoded_without_setting_off_full_collections(monkeypatch):
    # A page's thousands of items are alive until reduced to the kept fields: the young collections their
    # allocations set off would move them into the oldest generation, and every few pages CPython would then
    # walk every object of the triggerer (a full collection: at 10,000 waits, a stall past 0.2 s). The service
    # is a canned answer here (a sandbox in this process would allocate as much building it).
    monkeypatch.setenv(
        "AIRFLOW_CONN_HR", json.dumps({"conn_type": "happyrobot", "host": "http://hr.invalid/api/v1", "password": "k"})
    )
    models = [
        {
            "id": f"{i:024x}",
            "use_case_id": "uc-bulk",
            "name": f"bulk-{i}",
            "status": "training",
            "train_sample_ids": ["s1", "s2"],
            "test_sample_ids": [],
            "metrics": {"accuracy": None},
        }
        for i in range(3000)
    ]
    body = json.dumps({"data": models}).encode()

    async def canned(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"}, request=request)

    monkeypatch.setattr(httpx.AsyncClient, "send", canned)
    seen = {"id": models[0]["id"], "status": "training", "use_case_id": "uc-bulk"}
    refs = [{"model_id": m["id"]} for m in models[:8]]
    full_collections = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections.append(info)

    async def poll_rounds() -> list[Any]:
        client = await HappyRobotHook.aclient_for("hr")
        answers = []
        for _ in range(40):  # a poll interval this short: each round's first poll fetches the list anew
            answers += await asyncio.gather(
                *(
                    coalesce.aread(client, MODEL_LIFECYCLE, r, previous=seen, poll_interval=0.001, final=False)
                    for r in refs
                )
            )
        return answers

    before = dict(coalesce.stats)
    gc.collect()
    gc.callbacks.append(note)
    try:
        answers = asyncio.run(poll_rounds())
    finally:
        gc.callbacks.remove(note)
    assert coalesce.stats["list_pages"] - before["list_pages"] >= 40
    assert len(answers) == 40 * len(refs)
    assert coalesce.stats["served"] - before["served"] >= 39 * len(refs)  # the group's first asks read alone
    assert full_collections == []
