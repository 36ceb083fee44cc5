"""pytest plugin: test your own DAGs against the sandbox in one line, the way moto serves AWS users.

Installed with the provider (entry point ``pytest11``), so any test can ask for the ``modelreg_sandbox``
fixture: the sandbox runs on a free loopback port for the test session, is reset before each test, and
every ``*_default`` connection of the provider points at it (as ``AIRFLOW_CONN_<ID>`` in the test's
process, undone after the test)::

    def test_my_retraining_dag(modelreg_sandbox):
        modelreg_sandbox.fail("happyrobot", "doomed")          # models named *doomed* end failed
        modelreg_sandbox.fault("status:503~/models x2")        # the next two model calls answer 503
        assert modelreg_sandbox.run_dag(my_dag).state == "success"
        assert len(modelreg_sandbox.resources("happyrobot")) == 1

or choose faults, outcomes and what must exist first with a marker::

    @pytest.mark.modelreg_sandbox(faults=["status:429@POST"], fail={"oci_vision": "doomed"}, lifecycle_seconds=0.5)
    def test_it_rides_out_a_429(modelreg_sandbox): ...

    @pytest.mark.modelreg_sandbox(filesets=["default/my-checkpoint"])   # a NeMo model entity names one
    def test_my_nemo_registration(modelreg_sandbox): ...

At the sandbox's pace: while the fixture is active every wait of the provider (operators, sensors, deferred
or not) polls at most every ``pace_seconds`` (default 0.2 s, :mod:`airflow_provider_modelreg.pacing`), so a
DAG written for production (30 s poll intervals) runs in seconds. ``pace_seconds=None`` turns that off.

It prepares what it needs: Airflow's metadata DB, migrated on first use when it is SQLite (a fresh
``AIRFLOW_HOME``); any other database must be migrated beforehand (``airflow db migrate``), and the fixture
says so in one line.

Nothing heavy is imported until a test asks for the fixture: the plugin is loaded by every pytest run in an
environment that has the provider.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_modelreg.sandbox.faults import FaultRule
    from airflow_provider_modelreg.sandbox.server import SandboxServer

DEFAULT_LIFECYCLE_SECONDS = 1.0
# How often waits poll under the fixture: a few polls per sandbox lifecycle.
DEFAULT_PACE_SECONDS = 0.2
MARKER = "modelreg_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(faults=[...], fail={{service: match}}, lifecycle_seconds=0.4, pace_seconds=0.2, "
        "filesets=[...]): how the modelreg sandbox behaves for this test (fault rules as the sandbox's --fault, "
        "outcome rules as its --fail, NeMo filesets that exist first, how often waits poll; None: as configured)",
    )


class MetadataDBNotReady(RuntimeError):
    """Airflow's metadata DB is not migrated and is not one the plugin may migrate itself."""


class SandboxSession:
    """The sandbox as one test sees it: its URL and connections, and knobs for faults and outcomes."""

    def __init__(self, server: SandboxServer, key_file: str) -> None:
        from airflow_provider_modelreg.sandbox.keys import sandbox_connections

        self.server = server
        self.url = server.url
        self.sandbox = server.sandbox
        self.state = server.sandbox.state
        self.connections: dict[str, dict[str, Any]] = sandbox_connections(server.url, key_file)

    def fault(self, rule: str | Mapping[str, Any] | FaultRule) -> None:
        """Add a fault: the sandbox's ``--fault`` text (``status:503~/modelsx2``), a dict or a FaultRule."""
        from airflow_provider_modelreg.sandbox.faults import FaultRule

        if isinstance(rule, str):
            rule = FaultRule.parse(rule.replace(" ", ""))
        elif isinstance(rule, Mapping):
            rule = FaultRule(**rule)
        self.sandbox.faults.rules.append(rule)

    def fail(self, service: str, match: str, reason: str | None = None) -> None:
        """Resources of ``service`` (or ``*``) whose name contains ``match`` end in their failure state."""
        from airflow_provider_modelreg.sandbox.state import OutcomeRule

        rule = OutcomeRule(service=service, match=match)
        if reason is not None:
            rule.reason = reason
        self.state.outcome_rules.append(rule)

    def lifecycle(self, seconds: float, service: str = "*") -> None:
        """How long resources (of ``service``, or all) take to reach their final state."""
        self.state.lifecycle_seconds[service] = seconds

    def fileset(self, ref: str, files: Mapping[str, bytes] | None = None, **fields: Any) -> dict[str, Any]:
        """Make the NeMo fileset ``workspace/name`` exist with a checkpoint in it, as a user's checkpoint
        upload does (a model entity naming a fileset that does not exist is the platform's 400, and the
        platform's spec analysis of a fileset without a checkpoint ends in error). Through the Entities and
        Files APIs: the workspace if it is new (``POST /apis/entities/v2/workspaces``), the fileset
        (``POST /apis/files/v2/workspaces/{ws}/filesets``; ``fields``: its description, purpose, metadata...)
        and its ``files`` (``PUT .../filesets/{name}/-/{path}``). ``files`` defaults to a tiny Llama's
        ``config.json``, what the spec analysis reads; ``files={}`` leaves the fileset empty.
        Returns the fileset; one that already exists is returned as it is, with ``files`` uploaded into it."""
        workspace, _, name = ref.partition("/")
        if not workspace or not name:
            raise ValueError(f"fileset: {ref!r} must be 'workspace/name'")
        if files is None:
            from airflow_provider_modelreg.sandbox.nemo import TINY_LLAMA_CONFIG

            files = {"config.json": json.dumps(TINY_LLAMA_CONFIG).encode()}
        made = self.http("POST", "/apis/entities/v2/workspaces", json={"name": workspace})
        if made.status_code != 409:
            made.raise_for_status()
        path = f"/apis/files/v2/workspaces/{workspace}/filesets"
        created = self.http("POST", path, json={"name": name, "purpose": "model", **fields})
        if created.status_code != 409:
            created.raise_for_status()
        for file_path, content in files.items():
            self.http("PUT", f"{path}/{name}/-/{file_path}", content=content).raise_for_status()
        return dict(self.http("GET", f"{path}/{name}").json())

    def http(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request to the sandbox's HTTP surface (an ``httpx.Response``; ``kwargs`` as httpx's:
        ``json=``, ``headers=``...): for anything else a service needs to exist first, made the way a user
        would make it, at the path the service's own API has."""
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as client:
            return client.request(method, path, **kwargs)

    def pace(self, seconds: float | None) -> None:
        """How often every wait polls from now on in this test (None: as each wait is configured)."""
        from airflow_provider_modelreg.pacing import PACE_ENV

        if seconds is None:
            os.environ.pop(PACE_ENV, None)
        else:
            os.environ[PACE_ENV] = str(float(seconds))

    def resources(self, service: str) -> list[dict[str, Any]]:
        """What the service holds now, as its API would show it."""
        view = self.sandbox.views.get(service)
        from airflow_provider_modelreg.sandbox.state import public

        return [view(self.state, r) if view else public(r) for r in self.state.all(service)]

    @property
    def faults_injected(self) -> dict[str, int]:
        return dict(self.sandbox.faults.injected)

    def run_dag(self, dag: Any) -> Any:
        """Run ``dag`` once with ``dag.test()`` (deferred waits inline) and return its DagRun: see
        :func:`run_dag_test`."""
        return run_dag_test(dag)


def run_dag_test(dag: Any) -> Any:
    """Run ``dag`` once with ``dag.test()`` (deferred waits inline) and return its DagRun.

    The DAG is first written to the metadata DB as the DAG processor would, which ``dag.test()`` of a DAG
    built in a test needs; the DB is prepared first (``prepare_metadata_db``). A failed task does not
    raise: assert the run's ``state``.
    """
    from airflow_provider_modelreg.version_compat import quiet_dag_test_debug_logs, write_dag_to_db

    prepare_metadata_db()
    reuse_in_process_execution_api()
    quiet_dag_test_debug_logs()
    write_dag_to_db(dag)
    return dag.test()


_db_ready: set[str] = set()  # the metadata DBs (their URLs) found or made migrated by this process


def prepare_metadata_db() -> None:
    """Make sure Airflow's metadata DB (the one of this process's AIRFLOW_HOME) is migrated to the running
    Airflow's schema: a SQLite DB is migrated here, as ``airflow db migrate`` would (a fresh home has an
    empty one); any other raises :class:`MetadataDBNotReady`, whose one line says what to run, since
    migrating a shared server's DB is not a test fixture's call. Checked once per process."""
    from airflow import settings

    url = str(settings.SQL_ALCHEMY_CONN)
    if url in _db_ready:
        return
    if url.startswith("sqlite:///"):
        # A fresh AIRFLOW_HOME may not exist yet (Airflow 3.3 makes it when its config loads, 3.0 does not):
        # SQLite makes the file, never its folder.
        database = url.split(":///", 1)[1].split("?", 1)[0]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if _unapplied_migrations():
        if not url.startswith("sqlite"):
            home = os.environ.get("AIRFLOW_HOME", "~/airflow")
            raise MetadataDBNotReady(
                f"Airflow's metadata DB ({url.split(':', 1)[0]}) is not migrated: run `AIRFLOW_HOME={home} "
                "airflow db migrate` before the tests"
            )
        with _file_lock(url):  # pytest-xdist workers share the file: one migrates, the others then find it done
            if _unapplied_migrations():
                from airflow.utils import db

                db.initdb()
    _db_ready.add(url)


def _unapplied_migrations() -> bool:
    """True when the DB's Alembic heads are not the running Airflow's (an empty DB has none)."""
    import airflow
    from airflow import settings
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(airflow.__file__).parent / "migrations"))
    wanted = set(ScriptDirectory.from_config(config).get_heads())
    with settings.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads()) != wanted


@contextlib.contextmanager
def _file_lock(sqlite_url: str) -> Iterator[None]:
    """An exclusive lock beside the SQLite file (none for an in-memory DB)."""
    import fcntl

    database = sqlite_url.split(":///", 1)[-1].split("?", 1)[0]
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.modelreg-migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def reuse_in_process_execution_api() -> None:
    """On Airflow 3.2, let every task of every ``dag.test()`` share one in-process Execution API, as 3.3 does.

    Airflow 3.2's ``dag.test()`` builds a new in-process Execution API for each task it runs: a FastAPI app
    whose versioned routers Cadwyn generates on its first request (about 2 s of CPU on a 2-core machine),
    with an event-loop thread that is never stopped. Airflow 3.3 builds it once per process
    (apache/airflow#65235, ``functools.lru_cache`` on ``in_process_api_server``); this does the same on 3.2.
    It changes only how the test run reaches the API, not what any task does: each task still gets a fresh
    ``DBDagBag`` through the same dependency override.
    """
    import functools

    from airflow.sdk.execution_time import supervisor

    build = getattr(supervisor, "in_process_api_server", None)
    if build is not None and not hasattr(build, "cache_clear"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(build)


def reset_sandbox(server: SandboxServer, lifecycle_seconds: float = DEFAULT_LIFECYCLE_SECONDS) -> None:
    """Back to a fresh sandbox: no resources, faults, outcome rules or NeMo auth; the default API keys."""
    from airflow_provider_modelreg.sandbox.keys import HAPPYROBOT_API_KEY

    state = server.sandbox.state
    state.reset()
    server.sandbox.faults.rules.clear()
    server.sandbox.faults.injected.clear()
    state.lifecycle_seconds.clear()
    state.lifecycle_seconds["*"] = lifecycle_seconds
    state.happyrobot_api_keys = {HAPPYROBOT_API_KEY}
    state.nemo_tokens = set()


@contextlib.contextmanager
def sandbox_session(
    server: SandboxServer,
    key_file: str,
    *,
    faults: Iterable[str | Mapping[str, Any] | FaultRule] = (),
    fail: Mapping[str, str] | None = None,
    lifecycle_seconds: float | None = None,
    pace_seconds: float | None = DEFAULT_PACE_SECONDS,
    filesets: Iterable[str] = (),
) -> Iterator[SandboxSession]:
    """The fixture's work, for any runner (the fixture; ``benchmarks/dag_test_speed.py``): a freshly reset
    sandbox with these faults, outcomes and filesets, every default connection of the provider pointing at
    it and the waits at its pace (``AIRFLOW_CONN_<ID>`` and the pacing setting in this process's
    environment), all undone on exit.

    The sandbox's lifecycles follow the pace unless ``lifecycle_seconds`` is given: a resource ends after
    two polls (``2 * pace_seconds``: each wait still sees it in progress first), or after 1 s unpaced."""
    from airflow_provider_modelreg.pacing import PACE_ENV

    if lifecycle_seconds is None:
        lifecycle_seconds = DEFAULT_LIFECYCLE_SECONDS if pace_seconds is None else 2 * float(pace_seconds)
    reset_sandbox(server, float(lifecycle_seconds))
    session = SandboxSession(server, key_file)
    for rule in faults:
        session.fault(rule)
    for service, match in dict(fail or {}).items():
        session.fail(service, match)
    names = [f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in session.connections] + [PACE_ENV]
    saved = {name: os.environ.get(name) for name in names}
    try:
        for conn_id, conn in session.connections.items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        session.pace(pace_seconds)
        for ref in filesets:
            session.fileset(ref)
        yield session
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def modelreg_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, str]]:
    """The session's sandbox server and the path of the OCI key it accepts (in pytest's temp folder)."""
    from airflow_provider_modelreg.sandbox.keys import register_oci_key
    from airflow_provider_modelreg.sandbox.server import SandboxServer

    key_file = tmp_path_factory.mktemp("modelreg-sandbox") / "oci_api_key.pem"
    with SandboxServer() as server:
        register_oci_key(server.sandbox.state, key_file)
        reset_sandbox(server)
        yield server, str(key_file)


@pytest.fixture(scope="session")
def modelreg_airflow_db() -> None:
    """Airflow's metadata DB, migrated (SQLite) or found migrated; else the test stops with what to run."""
    try:
        prepare_metadata_db()
    except MetadataDBNotReady as exc:
        pytest.fail(f"modelreg_sandbox: {exc}", pytrace=False)


@pytest.fixture
def modelreg_sandbox(
    modelreg_sandbox_server: tuple[SandboxServer, str], modelreg_airflow_db: None, request: pytest.FixtureRequest
) -> Iterator[SandboxSession]:
    """A freshly reset sandbox, every default connection of the provider pointing at it, waits at its pace."""
    server, key_file = modelreg_sandbox_server
    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker else {}
    with sandbox_session(server, key_file, **options) as session:
        yield session
