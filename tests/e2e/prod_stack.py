"""A production-shaped Airflow on loopback, started by the tests themselves: PostgreSQL 15, Redis, the
CeleryExecutor with two workers, two triggerers, and a separate scheduler, dag-processor and API server.

Components run from ``.venv-prod`` (``./dev setup`` makes it: the locked Airflow plus the Celery provider,
``celery<5.7``, psycopg2 and this provider), so the provider's own environment stays free of Celery. The
PostgreSQL and Redis servers are Debian's (``./dev setup`` installs them when missing); each test session
gets its own data directory and ports, and everything is stopped (process group and all) at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-prod"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing() -> str | None:
    """Why the stack cannot start here, or None."""
    if not (VENV / "bin" / "airflow").exists():
        return f"{VENV} is missing (./dev setup makes it)"
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PG_BIN}; ./dev setup installs it)"
    if not shutil.which("redis-server"):
        return "redis-server is not installed (./dev setup installs it)"
    return None


class Component:
    def __init__(self, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def alive(self) -> bool:
        return self.proc.poll() is None


class ProductionStack:
    """``with ProductionStack(workdir, connections, dags) as stack: stack.api("GET", "/api/v2/dags")``."""

    def __init__(self, workdir: Path, connections: dict[str, dict[str, Any]], dags_folder: Path) -> None:
        self.workdir = workdir
        self.connections = connections
        self.dags_folder = dags_folder
        self.components: dict[str, Component] = {}
        self.api_port = free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.home = workdir / "airflow"
        self.logs = workdir / "logs"
        # PostgreSQL refuses to run as root: as root its data directory belongs to the postgres user.
        self.pg_dir = Path(tempfile.mkdtemp(prefix="modelreg-pg-"))
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        (workdir / "tmp").mkdir(exist_ok=True)

    # -- start and stop -----------------------------------------------------------------------------
    def __enter__(self) -> ProductionStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
        db = f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow"
        env.update(
            {
                "PATH": f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "AIRFLOW_HOME": str(self.home),
                # Celery's prefork pool keeps its shared memory in a pymp-* folder of the temp directory, which
                # a worker killed with -9 (as these tests do) never removes: it goes with the stack's folder.
                "TMPDIR": str(self.workdir / "tmp"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # REST connections/test (the connection form's test)
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base}/execution/",
                "AIRFLOW__CORE__PARALLELISM": "64",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                # A killed triggerer's triggers move to the other after this many seconds without a heartbeat.
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                # A trigger's on_kill asks Airflow whether its task was marked failed; the triggerer's first
                # such question builds its in-process Execution API, which takes tens of seconds here.
                "AIRFLOW__TRIGGERER__ON_KILL_TIMEOUT": "120",
                # A kill -9 worker's task is failed (and retried) after this many seconds without a heartbeat.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "MODELREG_EXAMPLE_POLL_SECONDS": "1",
                "PYTHONPATH": os.pathsep.join([str(self.dags_folder), str(Path(__file__).parent)]),
            }
        )
        for conn_id, conn in self.connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        return env

    def start(self) -> None:
        self.jwt_secret = secrets.token_hex(16)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._start_postgres()
        self._spawn("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", ""])
        self.wait(lambda: self._port_open(self.redis_port), 30, "Redis")
        migrate = subprocess.run(["airflow", "db", "migrate"], env=self.env(), capture_output=True, text=True)
        if migrate.returncode:
            raise RuntimeError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
        self._spawn("api-server", ["airflow", "api-server", "--port", str(self.api_port)])
        self._spawn("scheduler", ["airflow", "scheduler"])
        self._spawn("dag-processor", ["airflow", "dag-processor"])
        for n in (1, 2):
            self.start_triggerer(n)
            self.start_worker(n)
        self.wait(lambda: self.api("GET", "/api/v2/monitor/health"), 180, "the API server")

    def start_triggerer(self, n: int) -> Component:
        name = f"triggerer-{n}"
        # Named after the component in the job table (both triggerers share this machine's hostname).
        named = {
            "MODELREG_COMPONENT": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "component_hostname.hostname",
            # Each its own log server: on the shared default port the second one fails to bind.
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # asyncio logs each callback holding the loop over 0.1 s, naming its task (test_production.py).
            "PYTHONASYNCIODEBUG": "1",
        }
        return self._spawn(name, ["airflow", "triggerer", "--capacity", "1000"], named)

    def start_worker(self, n: int) -> Component:
        # Each its own log server: on the shared default port the second one fails to bind.
        port = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
        return self._spawn(f"worker-{n}", ["airflow", "celery", "worker", "--celery-hostname", f"worker{n}@%h"], port)

    def _start_postgres(self) -> None:
        data = self.pg_dir / "data"
        if self.as_postgres:
            shutil.chown(self.pg_dir, "postgres")
        subprocess.run(
            [*self.as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        self._spawn(
            "postgres",
            [
                *self.as_postgres,
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.pg_port),
                "-k",
                str(self.pg_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
                "-c",
                "fsync=off",
            ],
            {"TMPDIR": str(self.pg_dir)},  # the postgres user's own (the stack's folder is root's)
        )
        self.wait(lambda: self._port_open(self.pg_port), 60, "PostgreSQL")
        createdb = [*self.as_postgres, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port)]
        self.wait(
            lambda: subprocess.run([*createdb, "-U", "airflow", "airflow"], capture_output=True).returncode == 0,
            30,
            "the airflow database",
        )

    def _spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Component:
        log = self.logs / f"{name}.log"
        env = self.env() | (extra_env or {})
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
            )
        self.components[name] = Component(name, proc, log)
        return self.components[name]

    def stop(self) -> None:
        for component in self.components.values():
            if component.alive():
                os.killpg(component.proc.pid, signal.SIGTERM)
        for component in self.components.values():
            try:
                component.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(component.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.pg_dir, ignore_errors=True)

    # -- using it -----------------------------------------------------------------------------------
    @staticmethod
    def _port_open(port: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, c in self.components.items() if not c.alive() and not n.startswith("killed")]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}:\n{self.tail(dead[0])}")
            try:
                if result := check():
                    return result
            except (OSError, urllib.error.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{self.tail('scheduler')}")

    def tail(self, name: str, chars: int = 3000) -> str:
        component = self.components.get(name)
        return component.log.read_text(errors="replace")[-chars:] if component else ""

    def retire(self, name: str) -> Component:
        """kill -9 a component and keep it out of the liveness check."""
        component = self.components.pop(name)
        component.kill9()
        self.components[f"killed-{name}"] = component
        return component

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.wait(lambda: self.api("GET", f"/api/v2/dags/{dag_id}"), 180, f"{dag_id} to be parsed")
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_runs(self, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
        def finished() -> dict[tuple[str, str], str] | None:
            states = {run: self.run_state(*run) for run in runs}
            return states if all(s in {"success", "failed"} for s in states.values()) else None

        return self.wait(finished, timeout, f"{len(runs)} DAG runs")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:  # the API answers at most [api] maximum_page_limit (100) per page
            path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(found)}"
            page = self.api("GET", path)["task_instances"]
            found += page
            if len(page) < 100:
                return found
