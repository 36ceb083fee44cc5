"""Test set-up: a private AIRFLOW_HOME with a SQLite metadata DB, a DAG runner, and the sandbox."""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import: point it at a throw-away home before anything imports it.
# Removed when the process ends (each pytest-xdist worker has its own): a run leaves nothing behind.
_HOME = Path(tempfile.mkdtemp(prefix="modelreg-airflow-home-"))
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
(_HOME / "dags").mkdir()
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
os.environ["MODELREG_EXAMPLE_POLL_SECONDS"] = "0.5"  # the example DAGs poll the fast sandbox quickly

HAPPYROBOT_KEY = "sandbox-happyrobot-key"

# Service-specific fixtures live in tests/fixtures/<service>.py, one owner per file.
pytest_plugins = [
    "pytester",  # tests/test_pytest_plugin.py runs a user's test suite against the provider's plugin
    *sorted(f"fixtures.{p.stem}" for p in (Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "__init__"),
]


def pytest_unconfigure(config: pytest.Config) -> None:
    """pytest's per-user temp root (``pytest-of-<user>``) goes too, once this run's folders are gone (the
    retention policy "failed" removes them at session end) and when no other run has folders in it."""
    if hasattr(config, "workerinput") or config.option.basetemp:
        return
    import contextlib
    import getpass

    with contextlib.suppress(OSError, KeyError):
        (Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}").rmdir()  # only if empty


@pytest.fixture(autouse=True)
def _no_log_handler_on_a_closed_stream() -> None:
    """Drop stdlib log handlers left writing to a stream an earlier test's capture closed. Airflow 3.0's
    logging set-up (in a ``dag.test()``) attaches a StreamHandler to the ``sys.stderr`` of that moment, which
    under pytest is a capture that ends with the test; every later record then makes a "--- Logging error ---"
    report in whatever test logs next (seen as a second copy of the line a test counts)."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *(lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                logger.removeHandler(handler)


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """The process's stdlib logging as it was before the test, afterwards: for a test that runs a tool which
    configures logging in-process. ``logging.config.dictConfig`` defaults to ``disable_existing_loggers=True``:
    every existing logger it does not name gets ``disabled = True``, the provider's own among them, so a later
    test in the same process (an xdist worker) finds ``caplog`` empty. Every logger's switches, handlers and
    filters are put back, and ``logging.disable``'s level."""
    manager = logging.Logger.manager

    def switches(logger: logging.Logger) -> tuple[bool, int, bool, list[Any], list[Any]]:
        return logger.disabled, logger.level, logger.propagate, list(logger.handlers), list(logger.filters)

    def loggers() -> dict[str, logging.Logger]:
        existing = {name: lg for name, lg in list(manager.loggerDict.items()) if isinstance(lg, logging.Logger)}
        return existing | {"": logging.getLogger()}

    before = {name: switches(logger) for name, logger in loggers().items()}
    disabled_below = manager.disable
    yield
    for name, logger in loggers().items():
        if name in before:  # a logger the test's tool created is the tool's to keep
            logger.disabled, level, logger.propagate, logger.handlers[:], logger.filters[:] = before[name]
            logger.setLevel(level)  # through setLevel: it clears the loggers' cached effective levels
    logging.disable(disabled_below)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """The session's metadata DB, migrated as the provider's pytest plugin migrates a user's."""
    from airflow_provider_modelreg.pytest_plugin import prepare_metadata_db

    prepare_metadata_db()


class DagRunResult:
    """A finished ``dag.test()`` run: its state, each task's state, and XCom return values."""

    def __init__(self, dag_run: Any) -> None:
        self.dag_run = dag_run
        self.state = str(dag_run.state)
        self.run_id = dag_run.run_id
        self.dag_id = dag_run.dag_id

    def task_states(self) -> dict[str, str]:
        return {ti.task_id: str(ti.state) for ti in self._tis()}

    def task_state(self, task_id: str) -> str:
        return self.task_states()[task_id]

    def try_number(self, task_id: str) -> int:
        return next(ti.try_number for ti in self._tis() if ti.task_id == task_id)

    def _tis(self) -> list[Any]:
        from airflow.utils.session import create_session

        with create_session() as session:
            tis = self.dag_run.get_task_instances(session=session)
            session.expunge_all()
            return tis

    def extra_links(self, task_id: str) -> dict[str, str | None]:
        """The task's extra links as Airflow's REST API renders them for the UI (null: no button)."""
        from airflow.utils.session import create_session

        with create_session() as session:
            try:
                from airflow.models.dagbag import DBDagBag
            except ImportError:  # Airflow 3.0
                from airflow.models.serialized_dag import SerializedDagModel

                task = SerializedDagModel.get_dag(self.dag_id, session=session).get_task(task_id)
            else:
                task = DBDagBag().get_latest_version_of_dag(self.dag_id, session=session).get_task(task_id)
            ti = next(t for t in self.dag_run.get_task_instances(session=session) if t.task_id == task_id)
            return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            row = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == self.dag_id,
                    XComModel.run_id == self.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == key,
                    XComModel.map_index == map_index,
                )
            ).first()
            if row is None:
                return None
            value = row.value
            if not isinstance(value, str):
                return value
            try:
                return json.loads(value)
            except ValueError:  # extra-link XComs are stored as raw strings
                return value


@pytest.fixture
def run_dag(airflow_db: None, monkeypatch: pytest.MonkeyPatch) -> Callable[..., DagRunResult]:
    """Serialise a DAG built in a test to the DB, then run it with ``dag.test()`` (deferred tasks inline).

    ``connections`` maps conn_id to a connection dict (set as AIRFLOW_CONN_* for the run).
    """

    def run(dag: Any, connections: dict[str, dict[str, Any]] | None = None) -> DagRunResult:
        from airflow_provider_modelreg.pytest_plugin import run_dag_test

        for conn_id, conn in (connections or {}).items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return DagRunResult(run_dag_test(dag))

    return run


@pytest.fixture(scope="session")
def sandbox_server(modelreg_sandbox_server: Any) -> Any:
    """The session's sandbox (the provider's own pytest plugin starts it), on a free loopback port."""
    return modelreg_sandbox_server[0]


@pytest.fixture
def sandbox(sandbox_server: Any) -> Iterator[Any]:
    """The session's sandbox, reset before each test (resources, faults, outcome rules, fast lifecycles)."""
    from airflow_provider_modelreg.pytest_plugin import reset_sandbox

    reset_sandbox(sandbox_server)
    yield sandbox_server


@pytest.fixture
def happyrobot_conn(sandbox: Any) -> dict[str, Any]:
    return {"conn_type": "happyrobot", "host": f"{sandbox.url}/api/v1", "password": HAPPYROBOT_KEY}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # NVIDIA's real NeMo server is about 350 MB and 15-25 s to start: its tests share one xdist worker (with
    # `--dist loadgroup`, as ./dev test runs) so one server serves them all instead of one per worker.
    for item in items:
        if item.get_closest_marker("nemo_server") is not None:
            item.add_marker(pytest.mark.xdist_group("nemo_server"))
