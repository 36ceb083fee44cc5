"""Requests per second the sandbox serves, so the triggerer figures are known not to be limited by it.

The sandbox (``python -m airflow_provider_modelreg.sandbox``) runs in its own process; this process loads it
with ``GET /api/v1/models/{id}`` (Bearer key, keep-alive) at concurrency 50 for a fixed time, repeated, and
reports the median. Two clients: a minimal raw-socket HTTP/1.1 client (the least client CPU, so the figure is
the server's) and httpx with one shared pool (what the provider's triggers use). The sandbox's own CPU time is
read from /proc, so "server CPU per request" and the capacity of one core hold even when the two cores are
shared with other work.

Target: the sandbox serves at least twice the highest poll rate ``triggerer_scale.py`` asks of it.

    .venv/bin/python benchmarks/sandbox_throughput.py [--quick] [--seconds 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HAPPYROBOT_KEY, Row, conditions, median, print_table, sandbox_process, spread

CONCURRENCY = 50
# Highest poll rate triggerer_scale.py asks of the sandbox (N / poll interval, steady state); keep in step.
TRIGGERER_POLL_RATE = 500.0


def create_model(url: str) -> str:
    body = {
        "use_case_id": "bench",
        "name": "bench-model",
        "from_model_id": "a" * 24,
        "train_sample_ids": ["s1"],
        "test_sample_ids": ["s2"],
    }
    req = urllib.request.Request(f"{url}/api/v1/models", data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    req.add_header("authorization", f"Bearer {HAPPYROBOT_KEY}")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(json.loads(resp.read())["id"])


async def raw_worker(port: int, path: str, stop_at: float, latencies: list[float]) -> int:
    """One keep-alive connection sending requests back to back; returns the number of 200 answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {HAPPYROBOT_KEY}\r\n"
        "accept: application/json\r\n\r\n"
    ).encode()
    done = 0
    try:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected answer: {head[:80]!r}")
            latencies.append(time.perf_counter() - t0)
            done += 1
    finally:
        writer.close()
    return done


async def httpx_worker(client: object, path: str, stop_at: float, latencies: list[float]) -> int:
    done = 0
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        resp = await client.get(path)  # type: ignore[attr-defined]
        resp.raise_for_status()
        latencies.append(time.perf_counter() - t0)
        done += 1
    return done


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process, from /proc (no psutil needed)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_run(kind: str, url: str, port: int, path: str, seconds: float, server_pid: int) -> dict[str, float]:
    latencies: list[float] = []
    client = None
    if kind == "httpx":
        import httpx

        client = httpx.AsyncClient(
            base_url=url,
            headers={"authorization": f"Bearer {HAPPYROBOT_KEY}"},
            limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
        )
        await asyncio.gather(*(client.get(path) for _ in range(CONCURRENCY)))  # open the pool first
    server_cpu0, client_cpu0 = cpu_seconds(server_pid), time.process_time()
    t0 = time.monotonic()
    stop_at = t0 + seconds
    if kind == "raw":
        counts = await asyncio.gather(*(raw_worker(port, path, stop_at, latencies) for _ in range(CONCURRENCY)))
    else:
        counts = await asyncio.gather(*(httpx_worker(client, path, stop_at, latencies) for _ in range(CONCURRENCY)))
    elapsed = time.monotonic() - t0
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu0, time.process_time() - client_cpu0
    if client is not None:
        await client.aclose()
    total = sum(counts)
    latencies.sort()
    return {
        "rps": total / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "server_ms_per_req": server_cpu / total * 1000,
        "client_ms_per_req": client_cpu / total * 1000,
        "server_core_share": server_cpu / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (3 s x 2)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client; the median is reported")
    args = parser.parse_args()
    seconds, repeats = (3.0, 2) if args.quick else (args.seconds, args.repeats)
    try:
        import uvloop  # the least client overhead; the sandbox (uvicorn) uses it too when installed

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"

    print(f"sandbox_throughput: {conditions()}")
    print(f"concurrency {CONCURRENCY} keep-alive connections, {repeats} x {seconds:.0f} s per client, {loop_name}")
    results: dict[str, list[dict[str, float]]] = {"raw": [], "httpx": []}
    with sandbox_process(lifecycle_seconds=3600) as box:
        model_id = create_model(box.url)
        path = f"/api/v1/models/{model_id}"
        asyncio.run(one_run("raw", box.url, box.port, path, 1.0, box.pid))  # warm-up
        for _ in range(repeats):
            for kind in ("raw", "httpx"):  # interleaved, so a burst of outside load hits both alike
                r = asyncio.run(one_run(kind, box.url, box.port, path, seconds, box.pid))
                results[kind].append(r)
                print(
                    f"  {kind:5s} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                    f"server {r['server_ms_per_req']:.3f} ms CPU/req ({r['server_core_share']:.0%} of a core)  "
                    f"client {r['client_ms_per_req']:.3f} ms CPU/req",
                    flush=True,
                )

    def med(kind: str, key: str) -> float:
        return median([r[key] for r in results[kind]])

    raw_rps = med("raw", "rps")
    per_core = 1000.0 / med("raw", "server_ms_per_req")
    need = 2 * TRIGGERER_POLL_RATE
    rows = [
        Row(
            "sandbox req/s (raw keep-alive client, c=50)",
            f"{raw_rps:.0f} ({spread([r['rps'] for r in results['raw']])})",
            f"httpx client, one pool of 50: {med('httpx', 'rps'):.0f} (client-bound)",
            f">= {need:.0f} (2 x triggerer poll rate {TRIGGERER_POLL_RATE:.0f}/s)",
            raw_rps >= need,
        ),
        Row(
            "sandbox CPU per request",
            f"{med('raw', 'server_ms_per_req'):.3f} ms (= {per_core:.0f} req/s per core)",
            f"httpx client CPU/req: {med('httpx', 'client_ms_per_req'):.3f} ms",
            "-",
            None,
        ),
        Row(
            "latency p50 / p99 (raw client)",
            f"{med('raw', 'p50_ms'):.1f} / {med('raw', 'p99_ms'):.1f} ms",
            f"httpx: {med('httpx', 'p50_ms'):.1f} / {med('httpx', 'p99_ms'):.1f} ms",
            "-",
            None,
        ),
    ]
    print_table("Sandbox throughput (medians)", rows, ours="sandbox")
    return 0


if __name__ == "__main__":
    sys.exit(main())
