"""Triggerer scale: N LifecycleTriggers waiting concurrently in one event loop, polling the sandbox.

For each N (1,000, 5,000, 10,000 by default) and each variant, a fresh worker process:

1. builds N triggers from their serialised form (``LifecycleTrigger(**kwargs)`` after a JSON round trip,
   as the triggerer reads them from the database), with the connection in ``AIRFLOW_CONN_HR`` (JSON);
2. starts them all in one asyncio loop the way the triggerer's ``create_triggers`` does (one at a time,
   yielding to the loop between two), runs each as ``run_trigger`` does (``async for event in run()``, then
   ``cleanup()``), beside a watchdog coroutine that measures how late ``sleep(0.01)`` wakes up;
3. "startup": every trigger makes its first poll (this is what a triggerer restart looks like);
4. "steady": the sandbox keeps the models TRAINING for two more poll intervals;
5. "finish": the models turn ACTIVE and every trigger yields its success event and is cleaned up.

The sandbox runs in another process (``python -m airflow_provider_modelreg.sandbox``); its N HappyRobot
models are created first through ``POST /api/v1/models``. The poll interval grows with N (N / 500 s, at
least 2 s) so the sandbox is asked for about 500 polls/s, well under what it serves
(see ``sandbox_throughput.py``).

Variants:
  provider     the package as it is: the triggers of one connection share one pooled httpx.AsyncClient
               per event loop (``http.SharedAsyncClient``), at most 10 requests in flight, and one list
               (``GET /models?use_case_id=&status=``) serves every wait it covers (``coalesce.py``)
  individual   the package with coalescing switched off (each wait its own GET), for before/after
  http         peer: apache-airflow-providers-http's HttpSensorTrigger doing the same polls, in its own
               venv (built with ``uv`` under ~/.cache/modelreg-bench/ on first use; scratch venvs untouched).
               The sandbox answers its polls 404 until the models would have turned ACTIVE, then 200, since
               that trigger waits for "not 404" rather than for a state.
  per-trigger  the package before shared clients (every trigger built its own client), patched back in
               for before/after figures; not run by default (at 5,000 and 10,000 it takes 25 minutes)

Figures per run: memory per trigger (RSS delta / N; tracemalloc in a separate pass), CPU per poll, longest
event-loop stall and longest garbage-collector pause, polls per second, TCP connections opened to the
sandbox and the most open at once, each beside the peer with PASS/MISS against issue 18's targets (CPU per
wait-poll at most a third of HttpSensorTrigger's, no stall or GC pause over 0.2 s without gc.freeze(), at most
10 KB per wait, a few hundred requests per poll interval). Evidence passes follow: tracemalloc with the
GC-tracked objects per waiting trigger (N=500, both variants), a cProfile of the provider variant's steady
phase (N=300) and, with --pool-sweep, the shared pool's sizing. On a shared machine, trust CPU time and object
counts over wall-clock stalls (the GC pause line gives the collector's own CPU time).

    .venv/bin/python benchmarks/triggerer_scale.py               # the README figures (~10 min on 2 cores)
    .venv/bin/python benchmarks/triggerer_scale.py --quick       # N = 1,000 only (~2 min; below ~1,000 the shared client's fixed ~3 MB dominates per-trigger memory)
    .venv/bin/python benchmarks/triggerer_scale.py --n 10000                     # issue 18's figures, both variants
    .venv/bin/python benchmarks/triggerer_scale.py --n 10000 --variants provider --no-tracemalloc [--gc-freeze]
    .venv/bin/python benchmarks/triggerer_scale.py --n 1000 --variants provider,per-trigger   # before/after
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    HAPPYROBOT_KEY,
    Row,
    bench_env,
    conditions,
    http_request,
    print_table,
    raw_http,
    sandbox_process,
)

POLL_RATE = 500.0  # polls/s asked of the sandbox in steady state (N / poll interval)
STEADY_INTERVALS = 2.0  # the steady phase lasts this many poll intervals
STALL_WARN = 0.2  # Airflow's triggerer warns when the loop is blocked longer than this
TARGET_KB = 10.0
PEER_VENV = Path.home() / ".cache" / "modelreg-bench" / "http-peer-venv"
PEER_REQUIREMENTS = ["apache-airflow-providers-http", "requests-toolbelt"]
SPEC = "airflow_provider_modelreg.hooks.happyrobot:MODEL_LIFECYCLE"


def poll_interval_for(n: int) -> float:
    return max(2.0, n / POLL_RATE)


# ============================================================================================ worker
def worker_main(args: argparse.Namespace) -> None:
    """One measured run, in a fresh process. Writes its figures as JSON to ``args.result``."""
    import asyncio
    import contextvars
    import gc
    import tracemalloc
    import urllib.request
    from asyncio import selector_events

    profiler: Any = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    with open(args.ids, encoding="utf-8") as fh:
        seed = json.load(fh)
    ids: list[str] = seed["ids"][: args.n]
    n = len(ids)
    port = int(args.port)
    base = f"http://127.0.0.1:{port}"
    interval = float(args.interval)
    steady_seconds = interval * STEADY_INTERVALS

    import airflow.sdk  # noqa: F401  (what every triggerer has loaded already)
    from airflow.sdk import BaseHook

    if args.variant == "http":
        from airflow.providers.http.hooks.http import HttpAsyncHook
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        trigger_cls: Any = HttpSensorTrigger
        conn_id = "hr_http"
    else:
        import httpx

        from airflow_provider_modelreg.http import ServiceClient
        from airflow_provider_modelreg.lifecycle import LifecycleTrigger, resolve_spec

        trigger_cls = LifecycleTrigger
        conn_id = "hr"
        resolve_spec(SPEC).hook_class()  # import the hook module once, as the first trigger would

    # -- instrumentation: polls (logical reads), HTTP sends, TCP connects --------------------------
    stats = {"polls": 0, "sends": 0, "connects": 0, "first_pending": n}
    first_seen = bytearray(n)
    current = contextvars.ContextVar("trigger_index", default=-1)
    all_first = asyncio.Event()

    def poll_count() -> int:
        return stats["polls"]

    def note_poll() -> None:
        stats["polls"] += 1
        note_first()

    def note_first() -> None:
        i = current.get()
        if i >= 0 and not first_seen[i]:
            first_seen[i] = 1
            stats["first_pending"] -= 1
            if stats["first_pending"] == 0:
                all_first.set()

    orig_connect = selector_events.BaseSelectorEventLoop.sock_connect

    async def counting_connect(self: Any, sock: Any, address: Any) -> Any:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == port:
            stats["connects"] += 1
        return await orig_connect(self, sock, address)

    selector_events.BaseSelectorEventLoop.sock_connect = counting_connect  # type: ignore[method-assign]

    if args.variant == "http":
        orig_run = HttpAsyncHook.run

        async def counted_run(self: Any, *a: Any, **kw: Any) -> Any:
            stats["sends"] += 1
            try:
                return await orig_run(self, *a, **kw)
            finally:
                note_poll()

        HttpAsyncHook.run = counted_run  # type: ignore[method-assign]
    else:
        from airflow_provider_modelreg import coalesce, lifecycle

        orig_aread = coalesce.aread
        orig_send = httpx.AsyncClient.send

        async def counted_aread(*a: Any, **kw: Any) -> Any:
            # A wait's first poll. The polls are counted by the coalescer (served by a list, or read alone):
            # a parked wait's polls never come here (ticks.park).
            try:
                return await orig_aread(*a, **kw)
            finally:
                note_first()

        def poll_count() -> int:
            return coalesce.stats["served"] + coalesce.stats["alone"]

        async def counted_send(self: Any, *a: Any, **kw: Any) -> Any:
            stats["sends"] += 1
            return await orig_send(self, *a, **kw)

        coalesce.aread = counted_aread  # type: ignore[assignment]
        httpx.AsyncClient.send = counted_send  # type: ignore[method-assign]
        if args.variant == "individual":
            import dataclasses

            alone = dataclasses.replace(resolve_spec(SPEC), list_read=None)
            lifecycle.resolve_spec = lambda key: alone if key == SPEC else resolve_spec(key)  # type: ignore[assignment]
        if args.variant == "per-trigger":
            install_client_per_trigger(ServiceClient)

    def full_collection_cpu() -> float:
        # The collector's own CPU for one full collection, the best of three.
        best = float("inf")
        for _ in range(3):
            cpu0 = time.process_time()
            gc.collect()
            best = min(best, time.process_time() - cpu0)
        return best

    def rss() -> int:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def admin(method: str, path: str, body: Any = None) -> None:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        urllib.request.urlopen(req, timeout=30).read()

    # The serialised form, as the triggerer's database holds it (a JSON round trip of serialize()).
    end_time = time.time() + 3600
    if args.variant == "http":
        proto = HttpSensorTrigger(endpoint="/api/v1/models/X", http_conn_id=conn_id, poke_interval=interval)
    else:
        proto = LifecycleTrigger(
            spec=SPEC, conn_id=conn_id, ref={"model_id": "X"}, poll_interval=interval, end_time=end_time
        )
    classpath, proto_kwargs = proto.serialize()
    serialised = []
    for model_id in ids:
        kwargs = dict(proto_kwargs)
        if args.variant == "http":
            kwargs["endpoint"] = f"/api/v1/models/{model_id}"
        else:
            kwargs["ref"] = {"model_id": model_id}
        serialised.append(json.dumps([classpath, kwargs]))
    del proto

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        # Fetch the connection once before the baseline, so secrets-backend set-up is not counted per trigger.
        conn = await BaseHook.aget_connection(conn_id)
        conn_check = f"BaseHook.aget_connection({conn_id!r}) outside a triggerer: OK ({conn.conn_type})"
        if args.variant == "http":
            admin(
                "POST",
                "/_sandbox/faults",
                {"kind": "status", "status": 404, "method": "GET", "path": "^/api/v1/models/", "count": None},
            )
        gc.collect()
        full_cpu_before = full_collection_cpu()
        # Objects the garbage collector tracks (and walks in every full collection), counted in the
        # tracemalloc pass only: listing them takes long enough to show up as a stall. Listed before
        # tracemalloc starts, so the list itself is not counted against the triggers.
        before_ids = {id(o) for o in gc.get_objects()} if args.tracemalloc else set()
        if args.tracemalloc:
            tracemalloc.start(int(args.tracemalloc))
        rss0 = rss()

        events: dict[str, int] = {}
        errors: dict[str, int] = {}
        done = asyncio.Event()
        remaining = [n]
        first_event_at: list[float] = []

        async def drive(index: int, trigger: Any) -> None:
            current.set(index)
            agen = trigger.run()
            try:
                async for event in agen:
                    payload = event.payload
                    status = (
                        payload.get("status", "?")
                        if isinstance(payload, dict)
                        else ("success" if payload is True else str(payload))
                    )
                    events[status] = events.get(status, 0) + 1
                    if not first_event_at:
                        first_event_at.append(time.monotonic())
                    break
            except Exception as exc:  # a trigger crashing is a result to report, not a benchmark bug
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            finally:
                await agen.aclose()
                await trigger.cleanup()
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        stalls = {"startup": 0.0, "steady": 0.0, "finish": 0.0}
        over = {"startup": 0, "steady": 0, "finish": 0}
        phase = ["startup"]
        # Garbage-collector pauses per phase: a full collection walks every tracked object in the process
        # (Airflow's own included), all while the loop waits.
        gc_pause = {"startup": 0.0, "steady": 0.0, "finish": 0.0}
        gc_full = [0]
        gc_started = [0.0, 0.0]
        gc_worst: dict[str, float] = {}

        def on_gc(event: str, info: dict[str, int]) -> None:
            if phase[0] == "probe":  # the benchmark's own timed collections are not the loop's pauses
                return
            if event == "start":
                gc_started[:] = [time.perf_counter(), time.process_time()]
                return
            pause = time.perf_counter() - gc_started[0]
            if pause > gc_pause[phase[0]]:
                gc_pause[phase[0]] = pause
            if pause >= max(gc_pause.values()):
                # CPU time within the pause tells the collector's own work from waiting for a core.
                gc_worst.update(
                    wall=pause,
                    cpu=time.process_time() - gc_started[1],
                    generation=info.get("generation", -1),
                    collected=info.get("collected", 0),
                )
            if info.get("generation") == 2:
                gc_full[0] += 1

        gc.callbacks.append(on_gc)
        peak = [rss()]
        rss_samples: list[int] = []

        async def watchdog() -> None:
            ticks = 0
            while not done.is_set():
                before = loop.time()
                await asyncio.sleep(0.01)
                late = loop.time() - before - 0.01
                p = phase[0]
                if p == "probe":
                    continue
                if late > stalls[p]:
                    stalls[p] = late
                if late > STALL_WARN:
                    over[p] += 1
                ticks += 1
                if ticks % 10 == 0:
                    value = rss()
                    peak[0] = max(peak[0], value)
                    if p == "steady":
                        rss_samples.append(value)

        marks: dict[str, dict[str, float]] = {}

        def mark(name: str) -> None:
            marks[name] = {
                "t": time.monotonic(),
                "cpu": time.process_time(),
                "polls": poll_count(),
                "sends": stats["sends"],
                "connects": stats["connects"],
            }

        mark("start")
        dog = asyncio.ensure_future(watchdog())
        tasks: list[asyncio.Task[None]] = []

        async def create_triggers() -> None:
            # As TriggerRunner.create_triggers does: deserialise and start one trigger at a time, yielding
            # to the loop twice per trigger, so running triggers and the watchdog keep their turn.
            for index, text in enumerate(serialised):
                await asyncio.sleep(0)
                _classpath, kwargs = json.loads(text)
                await asyncio.sleep(0)
                tasks.append(asyncio.create_task(drive(index, trigger_cls(**kwargs))))

        creator = asyncio.ensure_future(create_triggers())
        deadline = float(args.timeout)
        traced_kb = None
        gc_objects: float | None = None
        gc_types: list[str] = []
        top: list[str] = []
        lifter: asyncio.Future[None] | None = None
        full_cpu_waiting: float | None = None
        try:
            await asyncio.wait_for(all_first.wait(), deadline)
            mark("all_first")
            # What one full collection costs with every wait waiting, beside its cost before any trigger: the
            # collector's CPU, which a loaded machine barely changes (a stall is that plus waiting for a core).
            phase[0] = "probe"
            full_cpu_waiting = full_collection_cpu()
            await asyncio.sleep(0.05)  # the watchdog's late wake-up is the probe's, not the steady phase's
            mark("all_first")
            phase[0] = "steady"
            if profiler is not None:  # the steady phase only: what a wait-poll costs, not start-up
                profiler.enable()
            if args.gc_freeze:
                # Prototype of a triggerer-side remedy: move every object alive now (Airflow's and the started
                # triggers') to the permanent generation, so full collections stop walking them.
                gc.freeze()
            peak[0] = max(peak[0], rss())
            if args.tracemalloc:
                from collections import Counter

                new_objects = Counter(type(o).__name__ for o in gc.get_objects() if id(o) not in before_ids)
                gc_objects = sum(new_objects.values()) / n
                gc_types = [f"{count / n:6.1f} {name}" for name, count in new_objects.most_common(16)]
                snap = tracemalloc.take_snapshot()
                traced_kb = sum(s.size for s in snap.statistics("filename")) / 1024 / n
                stats_lines = snap.statistics("lineno")[:10]
                top = [
                    f"{s.size / n:8.0f} B/trigger  {s.traceback[0].filename.split('site-packages/')[-1]}"
                    f":{s.traceback[0].lineno}"
                    for s in stats_lines
                ]
            # Keep every model in progress for the steady phase, then let all of them finish.
            if args.variant == "http":

                async def lift() -> None:
                    await asyncio.sleep(steady_seconds)
                    await asyncio.to_thread(admin, "DELETE", "/_sandbox/faults")

                lifter = asyncio.ensure_future(lift())
            else:
                seconds = time.time() - float(seed["t0"]) + steady_seconds
                await asyncio.to_thread(
                    admin, "POST", "/_sandbox/settings", {"lifecycle_seconds": {"happyrobot": seconds}}
                )
            while not first_event_at and not done.is_set():
                await asyncio.sleep(0.05)
            mark("first_event")
            if profiler is not None:
                profiler.disable()
            phase[0] = "finish"
            await asyncio.wait_for(done.wait(), deadline)
            mark("end")
            complete = True
        except asyncio.TimeoutError:
            complete = False
            for name in ("all_first", "first_event", "end"):
                if name not in marks:
                    mark(name)
            creator.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        done.set()
        await dog
        gc.callbacks.remove(on_gc)
        gc.collect()
        rss_after = rss()
        if lifter is not None:
            lifter.cancel()

        def between(a: str, b: str, key: str) -> float:
            return marks[b][key] - marks[a][key]

        steady_rss = max(rss_samples) if rss_samples else peak[0]
        return {
            "variant": args.variant,
            "n": n,
            "complete": complete,
            "interval": interval,
            "conn_check": conn_check,
            "events": events,
            "errors": errors,
            "rss0_mb": rss0 / 2**20,
            "peak_kb_per_trigger": (peak[0] - rss0) / 1024 / n,
            "steady_kb_per_trigger": (steady_rss - rss0) / 1024 / n,
            "retained_kb_per_trigger": (rss_after - rss0) / 1024 / n,
            "traced_kb_per_trigger": traced_kb,
            "traced_top": top,
            "gc_objects_per_trigger": gc_objects,
            "gc_types": gc_types,
            "stall_max": stalls,
            "stalls_over": over,
            "gc_pause_max": gc_pause,
            "gc_full": gc_full[0],
            "full_cpu_before": full_cpu_before,
            "full_cpu_waiting": full_cpu_waiting,
            "gc_worst": gc_worst,
            "gc_frozen": bool(args.gc_freeze),
            "started": n - stats["first_pending"],
            "startup_s": between("start", "all_first", "t"),
            "steady_s": between("all_first", "first_event", "t"),
            "finish_s": between("first_event", "end", "t"),
            "total_s": between("start", "end", "t"),
            "polls": poll_count(),
            "sends": stats["sends"],
            "connects": stats["connects"],
            "startup_polls": between("start", "all_first", "polls"),
            "steady_polls": between("all_first", "first_event", "polls"),
            "steady_sends": between("all_first", "first_event", "sends"),
            "startup_cpu": between("start", "all_first", "cpu"),
            "steady_cpu": between("all_first", "first_event", "cpu"),
            "total_cpu": between("start", "end", "cpu"),
            "steady_connects": between("all_first", "first_event", "connects"),
        }

    result = asyncio.run(main())
    if profiler is not None:
        import io
        import pstats

        result["profile"] = []
        for order in ("tottime", "cumtime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(int(args.profile))
            lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
            start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
            result["profile"] += [f"by {order}:"] + [ln.replace(sys.prefix, "<venv>") for ln in lines[start:]]
    with open(args.result, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


def install_client_per_trigger(service_client: Any) -> None:
    """The package before shared clients (commit d5efe73), for before/after figures: every ServiceClient
    builds its own httpx.AsyncClient with httpx's own TLS context, and closes it in ``aclose``."""
    import httpx

    class Private:
        def __init__(self, owner: Any) -> None:
            # httpx's own TLS context per client, as then (the package now shares one per setting).
            self.client = httpx.AsyncClient(**(owner._client_kwargs() | {"verify": owner.verify}))

        async def send(self, request: httpx.Request) -> httpx.Response:
            return await self.client.send(request)

        async def send_built(self, build: Any) -> httpx.Response:
            return await self.client.send(build(self.client))

        async def release(self) -> None:
            await self.client.aclose()

    def shared_async(self: Any) -> Any:
        if self._shared is None:
            self._shared = Private(self)
        return self._shared

    service_client._shared_async = shared_async


# ====================================================================================== orchestrator
def peer_python() -> str | None:
    """The peer venv's python: this interpreter's site-packages plus apache-airflow-providers-http."""
    python = PEER_VENV / "bin" / "python"
    check = [str(python), "-c", "import airflow.providers.http.triggers.http"]
    if python.exists() and subprocess.run(check, env=bench_env(), capture_output=True).returncode == 0:
        return str(python)
    try:
        import site

        base_site = site.getsitepackages()[0]
        subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(PEER_VENV)], check=True)
        peer_site = next((PEER_VENV / "lib").glob("python*/site-packages"))
        # Lines starting with "import" run at start-up: addsitedir also processes the base venv's .pth
        # files (the editable install of this package).
        (peer_site / "_modelreg_base_venv.pth").write_text(f"import site; site.addsitedir({base_site!r})\n")
        subprocess.run(
            ["uv", "pip", "install", "-q", "--python", str(python), "--no-deps", *PEER_REQUIREMENTS], check=True
        )
        if subprocess.run(check, env=bench_env(), capture_output=True).returncode == 0:
            return str(python)
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        print(f"  (peer venv not available: {exc})")
    return None


class Monitor(threading.Thread):
    """Samples, from this process, the worker's open TCP connections to the sandbox and the sandbox's CPU."""

    def __init__(self, worker_pid: int, sandbox_pid: int, port: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.worker = psutil.Process(worker_pid)
        self.sandbox = psutil.Process(sandbox_pid)
        self.port = port
        self.stop = threading.Event()
        self.max_open = 0
        cpu = self.sandbox.cpu_times()
        self.sandbox_cpu0 = cpu.user + cpu.system
        self.t0 = time.monotonic()
        self.sandbox_cpu = 0.0
        self.elapsed = 0.0

    def run(self) -> None:
        import psutil

        while not self.stop.wait(2.0):
            try:
                conns = self.worker.net_connections(kind="tcp")
            except psutil.Error:
                break
            open_now = sum(1 for c in conns if c.raddr and c.raddr.port == self.port and c.status == "ESTABLISHED")
            self.max_open = max(self.max_open, open_now)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=30)
        cpu = self.sandbox.cpu_times()
        self.sandbox_cpu = cpu.user + cpu.system - self.sandbox_cpu0
        self.elapsed = time.monotonic() - self.t0


def seed_models(box: Any, n: int) -> dict[str, Any]:
    import asyncio

    box.admin("POST", "/_sandbox/reset")
    box.admin("POST", "/_sandbox/settings", {"lifecycle_seconds": {"happyrobot": 1e6}})
    headers = {"authorization": f"Bearer {HAPPYROBOT_KEY}", "content-type": "application/json"}
    requests = []
    for i in range(n):
        body = {
            "use_case_id": "bench",
            "name": f"bench-{i}",
            "from_model_id": "a" * 24,
            "train_sample_ids": ["s1"],
            "test_sample_ids": ["s2"],
        }
        requests.append(http_request("POST", "/api/v1/models", box.port, headers, json.dumps(body).encode()))
    t0 = time.time()
    answers = asyncio.run(raw_http(box.port, requests, concurrency=20))
    bad = [status for status, _ in answers if status != 200]
    if bad:
        raise RuntimeError(f"seeding: {len(bad)} creates failed (first status {bad[0]})")
    return {"t0": t0, "seconds": time.time() - t0, "ids": [json.loads(body)["id"] for _, body in answers]}


def run_one(
    box: Any,
    python: str,
    variant: str,
    n: int,
    *,
    tracemalloc_frames: int = 0,
    profile: int = 0,
    timeout: float = 900.0,
    gc_freeze: bool = False,
) -> dict[str, Any] | None:
    seed = seed_models(box, n)
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as tmp:
        ids_file, result_file, err_file = Path(tmp, "ids.json"), Path(tmp, "result.json"), Path(tmp, "stderr")
        ids_file.write_text(json.dumps(seed))
        cmd = [
            python,
            __file__,
            "--worker",
            "--variant",
            variant,
            "--n",
            str(n),
            "--port",
            str(box.port),
            "--ids",
            str(ids_file),
            "--result",
            str(result_file),
            "--interval",
            str(poll_interval_for(n)),
            "--timeout",
            str(timeout),
            "--tracemalloc",
            str(tracemalloc_frames),
            "--profile",
            str(profile),
        ]
        if gc_freeze:
            cmd.append("--gc-freeze")
        env = bench_env(
            AIRFLOW_CONN_HR=json.dumps(
                {"conn_type": "happyrobot", "host": box.url + "/api/v1", "password": HAPPYROBOT_KEY}
            ),
            AIRFLOW_CONN_HR_HTTP=json.dumps(
                {"conn_type": "http", "host": box.url, "extra": {"Authorization": f"Bearer {HAPPYROBOT_KEY}"}}
            ),
        )
        with open(err_file, "wb") as err:
            # stdout to /dev/null: trigger log lines are rendered (a triggerer pays that) but not kept.
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
            monitor = Monitor(proc.pid, box.pid, box.port)
            monitor.start()
            code = proc.wait()
            monitor.finish()
        if code != 0 or not result_file.exists():
            print(f"  {variant} N={n}: worker failed (exit {code}):\n{err_file.read_text()[-3000:]}")
            return None
        result = json.loads(result_file.read_text())
    result.update(
        seed_seconds=seed["seconds"],
        max_open=monitor.max_open,
        sandbox_core_share=monitor.sandbox_cpu / monitor.elapsed if monitor.elapsed else 0.0,
    )
    return result


def pool_sweep(
    box: Any,
    tasks: int = 1000,
    per_task: int = 3,
    combos: tuple[tuple[int | None, int], ...] = ((None, 100), (None, 10), (10, 10), (32, 32), (4, 4), (1, 1)),
) -> list[str]:
    """Sizing evidence for the shared client: one httpx.AsyncClient, ``tasks`` coroutines polling at once.

    httpcore's pool re-scans every connection for every queued request on each change, and hands one idle
    connection to several waiters at once (all but one then retry), so CPU per request grows with the
    connections in use and with the queue; a semaphore in front keeps the queue out of the pool.
    """
    import asyncio

    import httpcore
    import httpx
    from sandbox_throughput import create_model

    path = f"/api/v1/models/{create_model(box.url)}"
    attempts = [0]
    original = httpcore.AsyncHTTP11Connection.handle_async_request

    async def counted(self: Any, request: Any) -> Any:
        attempts[0] += 1
        return await original(self, request)

    async def run(gate_size: int | None, pool_size: int) -> str:
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=min(pool_size, 20))
        client = httpx.AsyncClient(
            base_url=box.url,
            headers={"authorization": f"Bearer {HAPPYROBOT_KEY}"},
            limits=limits,
            timeout=httpx.Timeout(30.0, connect=10.0),  # what ServiceClient sets
        )
        gate = asyncio.Semaphore(gate_size) if gate_size else None

        async def one() -> None:
            for _ in range(per_task):
                if gate is None:
                    (await client.get(path)).raise_for_status()
                else:
                    async with gate:
                        (await client.get(path)).raise_for_status()

        attempts[0] = 0
        cpu0, t0 = time.process_time(), time.monotonic()
        label = f"pool {pool_size:3d}, {'no gate' if gate is None else f'gate {gate_size}':8s}"
        try:
            await asyncio.gather(*(one() for _ in range(tasks)))
        except httpx.HTTPError as exc:
            return f"{label}: FAILED with {type(exc).__name__} after {time.monotonic() - t0:.1f}s"
        finally:
            await client.aclose()
        n = tasks * per_task
        return (
            f"{label}: {(time.process_time() - cpu0) / n * 1000:.2f} ms CPU/request, "
            f"{n / (time.monotonic() - t0):5.0f} req/s, {attempts[0] / n:.1f} connection attempts/request"
        )

    httpcore.AsyncHTTP11Connection.handle_async_request = counted  # type: ignore[method-assign]
    try:
        return [asyncio.run(run(gate, pool)) for gate, pool in combos]
    finally:
        httpcore.AsyncHTTP11Connection.handle_async_request = original  # type: ignore[method-assign]


def requests_per_interval(r: dict[str, Any]) -> float:
    return r["steady_sends"] / (r["steady_s"] / r["interval"]) if r["steady_s"] > 0 else float("nan")


def describe(r: dict[str, Any]) -> str:
    steady_pps = r["steady_polls"] / r["steady_s"] if r["steady_s"] > 0 else float("nan")
    cpu_poll = r["steady_cpu"] / r["steady_polls"] * 1000 if r["steady_polls"] else float("nan")
    per_interval = requests_per_interval(r)
    lines = [
        f"  {r['variant']:8s} N={r['n']:>6,}  {'complete' if r['complete'] else 'INCOMPLETE'}  "
        f"events {r['events']} errors {r['errors'] or 0}  interval {r['interval']:.0f}s"
        + ("" if r["complete"] else f"  ({r['started']:,} of {r['n']:,} triggers had made a first poll)")
        + ("  [gc.freeze() after start-up]" if r.get("gc_frozen") else ""),
        f"           memory: peak {r['peak_kb_per_trigger']:.1f} KB/trigger, steady {r['steady_kb_per_trigger']:.1f}"
        f", after cleanup {r['retained_kb_per_trigger']:.1f} (baseline RSS {r['rss0_mb']:.0f} MB)",
        f"           startup {r['startup_s']:.1f}s ({r['startup_polls']} polls, {r['startup_cpu']:.1f} CPU-s), "
        f"steady {r['steady_s']:.1f}s ({r['steady_polls']} polls, {steady_pps:.0f}/s, {cpu_poll:.2f} ms CPU/poll), "
        f"finish {r['finish_s']:.1f}s; HTTP requests per poll interval (steady) {per_interval:,.0f}",
        f"           longest stall: startup {r['stall_max']['startup']:.3f}s, steady {r['stall_max']['steady']:.3f}s, "
        f"finish {r['stall_max']['finish']:.3f}s; stalls > {STALL_WARN}s: {sum(r['stalls_over'].values())}; "
        f"longest GC pause: startup {r['gc_pause_max']['startup']:.3f}s, steady {r['gc_pause_max']['steady']:.3f}s, "
        f"finish {r['gc_pause_max']['finish']:.3f}s ({r['gc_full']} full collections; the longest: "
        f"generation {r['gc_worst'].get('generation', '?')}, {r['gc_worst'].get('cpu', 0):.3f} CPU-s, "
        f"{r['gc_worst'].get('collected', 0):,} objects freed)",
        f"           one full collection: {r['full_cpu_before']:.3f} CPU-s before any trigger, "
        + (
            f"{r['full_cpu_waiting']:.3f} CPU-s with all {r['n']:,} waiting "
            f"({(r['full_cpu_waiting'] - r['full_cpu_before']) / r['n'] * 1e6:.1f} µs per wait)"
            if r.get("full_cpu_waiting") is not None
            else "not measured with the triggers waiting (the start-up did not finish)"
        ),
        f"           TCP connects {r['connects']:,} (steady phase {r['steady_connects']:,}), at most {r['max_open']:,} "
        f"open at once (2 s samples); HTTP sends {r['sends']:,} for {r['polls']:,} polls; "
        f"sandbox {r['sandbox_core_share']:.0%} of a core",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 only")
    parser.add_argument("--n", default=None, help="comma-separated trigger counts (default 1000,5000,10000)")
    parser.add_argument(
        "--variants", default="provider,http", help="provider, http (HttpSensorTrigger), per-trigger (before d5efe73+1)"
    )
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc and cProfile passes")
    parser.add_argument("--pool-sweep", action="store_true", help="also the shared pool's sizing sweep (~2 min)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per-phase limit of one run, seconds")
    # worker-only arguments
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("variant", "port", "ids", "result", "interval"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--profile", default="0", help=argparse.SUPPRESS)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="prototype: gc.freeze() once every trigger has started (a triggerer-side remedy); not the default",
    )
    args = parser.parse_args()
    if args.worker:
        args.n = int(args.n)
        args.tracemalloc = int(args.tracemalloc)
        args.profile = int(args.profile)
        worker_main(args)
        return 0

    import psutil

    counts = [int(x) for x in args.n.split(",")] if args.n else ([1000] if args.quick else [1000, 5000, 10000])
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    pythons = {"provider": sys.executable, "per-trigger": sys.executable, "individual": sys.executable}
    if "http" in variants:
        peer = peer_python()
        if peer is None:
            print("  peer HttpSensorTrigger: apache-airflow-providers-http could not be installed; peer skipped")
            variants.remove("http")
        else:
            pythons["http"] = peer
    bench_started = time.monotonic()
    print(f"triggerer_scale: {conditions()}")
    print(
        f"N = {counts}, variants {variants}; poll interval N/{POLL_RATE:.0f} s (>= 2 s), steady phase "
        f"{STEADY_INTERVALS:.0f} intervals; stall = lateness of asyncio.sleep(0.01)"
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with sandbox_process(lifecycle_seconds=1e6) as box:
        for n in counts:
            for variant in variants:
                prior = [r for (v, _), r in results.items() if v == variant]
                if prior:  # do not let a run that would not fit in memory take down the shared machine
                    per = max(r["peak_kb_per_trigger"] for r in prior) * 1024
                    need, free = per * n * 1.3, psutil.virtual_memory().available
                    if need > free - 3 * 2**30:
                        print(f"  {variant} N={n:,}: SKIPPED, needs ~{need / 2**30:.1f} GB, {free / 2**30:.1f} GB free")
                        continue
                started = time.monotonic()
                r = run_one(box, pythons[variant], variant, n, timeout=args.timeout, gc_freeze=args.gc_freeze)
                if r is None:
                    continue
                results[(variant, n)] = r
                print(describe(r) + f"\n           (run took {time.monotonic() - started:.0f}s)", flush=True)
        if not args.no_tracemalloc:
            evidence_n = min(counts[-1], 500)
            print(
                f"\ntracemalloc pass (N={evidence_n:,}, Python-heap bytes per trigger after every first poll; "
                "native memory such as OpenSSL's is not seen by tracemalloc):"
            )
            for variant in variants:
                r = run_one(box, pythons[variant], variant, evidence_n, tracemalloc_frames=1, timeout=args.timeout)
                if r is None:
                    continue
                results[(variant, -1)] = r
                print(
                    f"  {variant:8s} {r['traced_kb_per_trigger']:.1f} KB/trigger traced "
                    f"(RSS in the same run: {r['steady_kb_per_trigger']:.1f} KB); top lines:"
                )
                for line in r["traced_top"][:6]:
                    print(f"             {line}")
                print(
                    f"           {r['gc_objects_per_trigger']:.0f} GC-tracked objects/trigger (walked by every full "
                    f"collection): {', '.join(t.strip() for t in r['gc_types'][:6])}"
                )
            if args.pool_sweep:
                print(
                    "\nshared-pool sizing (one httpx.AsyncClient, 1,000 coroutines x 3 polls at once; httpx default "
                    "pool is 100):"
                )
                for line in pool_sweep(box):
                    print(f"    {line}", flush=True)
            if "provider" in variants:
                profile_n = min(counts[-1], 300)
                print(f"\ncProfile of the provider variant's steady phase, N={profile_n}:")
                r = run_one(box, sys.executable, "provider", profile_n, profile=14, timeout=args.timeout)
                for line in (r or {}).get("profile", []):
                    print(f"    {line}")

    # ------------------------------------------------------------------------------------ summary
    def peer_of(n: int, key: Any) -> str:
        parts = []
        names = {"http": "HttpSensorTrigger", "individual": "own GET per wait", "per-trigger": "client per trigger"}
        for variant, name in names.items():
            r = results.get((variant, n))
            if r is not None:
                parts.append(f"{name}: {key(r)}")
        return "; ".join(parts) or "-"

    rows: list[Row] = []
    for n in counts:
        ours = results.get(("provider", n))
        if ours is None:
            rows.append(
                Row(
                    f"N={n:,}: runs in one process",
                    "not run (skipped or failed)",
                    peer_of(n, lambda r: "complete" if r["complete"] else "incomplete"),
                    "all events",
                    False,
                )
            )
            continue

        def kb(r: dict[str, Any]) -> str:
            return f"{r['peak_kb_per_trigger']:.1f} KB"

        def stall(r: dict[str, Any]) -> str:
            return f"{max(r['stall_max'].values()):.3f} s"

        def gc_pause(r: dict[str, Any]) -> str:
            return f"{max(r['gc_pause_max'].values()):.3f} s ({r['gc_worst'].get('cpu', 0):.3f} CPU-s)"

        def cpu(r: dict[str, Any]) -> str:
            total = r["total_cpu"] / r["polls"] * 1000 if r["polls"] else float("nan")
            steady = r["steady_cpu"] / r["steady_polls"] * 1000 if r["steady_polls"] else float("nan")
            return f"{steady:.2f} ms steady / {total:.2f} ms overall"

        def steady_cpu(r: dict[str, Any]) -> float:
            return r["steady_cpu"] / r["steady_polls"] * 1000 if r["steady_polls"] else float("nan")

        def pps(r: dict[str, Any]) -> str:
            return f"{r['steady_polls'] / r['steady_s']:.0f}/s" if r["steady_s"] > 0 else "-"

        def conns(r: dict[str, Any]) -> str:
            return f"{r['connects']:,} opened, {r['max_open']:,} open at most"

        ok_all = ours["complete"] and ours["events"].get("success", 0) == n
        rows += [
            Row(
                f"N={n:,}: all triggers succeed in one process",
                f"{ours['events'].get('success', 0):,}/{n:,} in {ours['total_s']:.0f}s"
                + ("" if ours["complete"] else f" (stopped; {ours.get('started', 0):,} had started)"),
                peer_of(n, lambda r: f"{r['events'].get('success', 0):,}/{r['n']:,} in {r['total_s']:.0f}s"),
                "all",
                ok_all,
            ),
            Row(
                f"N={n:,}: memory per trigger (peak RSS delta / N)",
                kb(ours),
                peer_of(n, kb),
                f"<= {TARGET_KB:.0f} KB",
                ours["peak_kb_per_trigger"] <= TARGET_KB,
            ),
            Row(
                f"N={n:,}: longest event-loop stall (no gc.freeze)",
                stall(ours),
                peer_of(n, stall),
                f"<= {STALL_WARN} s",
                max(ours["stall_max"].values()) <= STALL_WARN,
            ),
            Row(
                f"N={n:,}: longest GC pause (wall; CPU of the longest)",
                gc_pause(ours),
                peer_of(n, gc_pause),
                f"<= {STALL_WARN} s",
                max(ours["gc_pause_max"].values()) <= STALL_WARN,
            ),
            Row(
                f"N={n:,}: CPU per wait-poll (steady)",
                cpu(ours),
                peer_of(n, cpu),
                "<= 1/3 of HttpSensorTrigger",
                (lambda peer: None if peer is None else steady_cpu(ours) <= steady_cpu(peer) / 3)(
                    results.get(("http", n))
                ),
            ),
            Row(
                f"N={n:,}: HTTP requests per poll interval (steady)",
                f"{requests_per_interval(ours):,.0f}",
                peer_of(n, lambda r: f"{requests_per_interval(r):,.0f}"),
                "a few hundred at most",
                requests_per_interval(ours) <= 300,
            ),
            Row(f"N={n:,}: polls per second (steady)", pps(ours), peer_of(n, pps), "-", None),
            Row(
                f"N={n:,}: TCP connections to the sandbox host",
                conns(ours),
                peer_of(n, conns),
                "one pool per host",
                ours["connects"] <= 100,
            ),
        ]
    evidence = results.get(("provider", -1))
    if evidence is not None:
        rows.append(
            Row(
                f"N={evidence['n']:,}: GC-tracked objects per waiting trigger (tracemalloc pass)",
                f"{evidence['gc_objects_per_trigger']:.1f}",
                peer_of(-1, lambda r: f"{r['gc_objects_per_trigger']:.1f}"),
                "fewer than the peer",
                (
                    lambda peer: (
                        None if peer is None else evidence["gc_objects_per_trigger"] < peer["gc_objects_per_trigger"]
                    )
                )(results.get(("http", -1))),
            )
        )
    print_table("Triggerer scale (provider = the package as it is)", rows)
    print(f"(whole benchmark: {(time.monotonic() - bench_started) / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
