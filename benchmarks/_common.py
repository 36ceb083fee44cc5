"""Helpers shared by the benchmark scripts: sandbox process, statistics, machine conditions, the result table.

Nothing here is imported by the package. Every benchmark prints its figures beside their peer and target
and says PASS or MISS per target; the README's tables are copied from that output.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HAPPYROBOT_KEY = "sandbox-happyrobot-key"


def _use_project_venv() -> None:
    """Let ``python benchmarks/<name>.py`` work from any interpreter: one without the project's packages
    re-runs the script under the venv that ``./dev`` creates (``.venv``)."""
    import importlib.util

    if all(importlib.util.find_spec(name) for name in ("airflow", "airflow_provider_modelreg", "oci")):
        return
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.executable).absolute() != venv_python:
        os.execv(venv_python, [str(venv_python), *sys.argv])
    sys.exit(f"the benchmarks need the project's venv: run `./dev test` once (it creates {venv_python})")


_use_project_venv()


PYCACHE = Path(tempfile.gettempdir()) / "modelreg-bench-pycache"


def bench_env(*, bytecode_cache: bool = True, **extra: str) -> dict[str, str]:
    """Environment for child processes: a throw-away AIRFLOW_HOME so no run touches ~/airflow, and a
    bytecode cache outside the work tree.

    An installed package has its ``.pyc`` files (pip compiles them at install); a work tree run with
    ``PYTHONDONTWRITEBYTECODE=1`` (as this one's shells are) compiles every module from source in every
    process, which is not what a DAG processor or triggerer pays. ``PYTHONPYCACHEPREFIX`` keeps the cache
    out of the shared tree. ``bytecode_cache=False`` measures the no-cache case on purpose.
    """
    env = dict(os.environ)
    home = Path(tempfile.gettempdir()) / "modelreg-bench-airflow-home"
    home.mkdir(exist_ok=True)
    env.setdefault("AIRFLOW_HOME", str(home))
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # as in this work tree's shells: only the stdlib has .pyc files
        env.pop("PYTHONPYCACHEPREFIX", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def use_bench_home() -> None:
    """Point this process at the throw-away AIRFLOW_HOME before it imports Airflow."""
    for key, value in bench_env().items():
        if key.startswith("AIRFLOW"):
            os.environ.setdefault(key, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SandboxProcess:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")


@contextlib.contextmanager
def sandbox_process(lifecycle_seconds: float = 3.0, python: str = sys.executable) -> Iterator[SandboxProcess]:
    """``python -m airflow_provider_modelreg.sandbox`` in its own process, on a free loopback port."""
    port = free_port()
    cmd = [
        python,
        "-m",
        "airflow_provider_modelreg.sandbox",
        "--port",
        str(port),
        "--lifecycle-seconds",
        str(lifecycle_seconds),
        "--log-level",
        "error",
    ]
    proc = subprocess.Popen(cmd, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    box = SandboxProcess(proc, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"the sandbox exited at start-up:\n{err[-2000:]}")
            try:
                box.admin("GET", "/_sandbox/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the sandbox did not answer within 60 s") from None
                time.sleep(0.1)
        yield box
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def raw_http(port: int, requests: Sequence[bytes], concurrency: int = 20) -> list[tuple[int, bytes]]:
    """Send prepared HTTP/1.1 requests over ``concurrency`` keep-alive connections; (status, body) each.

    A minimal client (no parsing beyond Content-Length) so that loading the sandbox costs the loader
    almost no CPU; used for seeding resources and for measuring the sandbox itself.
    """
    import asyncio

    results: list[tuple[int, bytes]] = [(0, b"")] * len(requests)
    queue = list(enumerate(requests))[::-1]

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                index, request = queue.pop()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length)
                results[index] = (int(head[9:12]), body)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(requests)) or 1)))
    return results


def http_request(method: str, path: str, port: int, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: 127.0.0.1:{port}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """'min..max' of a sample, for the reader to judge the noise."""
    if not values:
        return "-"

    def fmt(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"

    return f"{fmt(min(values))}..{fmt(max(values))}"


def conditions() -> str:
    """One line describing the machine and its load while the benchmark ran."""
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), load average {load}, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


@dataclass
class Row:
    """One line of a result table: our figure, its peer, the target and whether it is met."""

    figure: str
    ours: str
    peer: str
    target: str
    ok: bool | None  # None: informative, no target

    @property
    def verdict(self) -> str:
        return "-" if self.ok is None else ("PASS" if self.ok else "MISS")


def print_table(title: str, rows: Sequence[Row], ours: str = "provider") -> None:
    headers = ("figure", ours, "peer", "target", "result")
    cells = [(r.figure, r.ours, r.peer, r.target, r.verdict) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)) + " |")
    misses = [r.figure for r in rows if r.ok is False]
    print(f"\n{'MISS: ' + '; '.join(misses) if misses else 'all targets met'}")
