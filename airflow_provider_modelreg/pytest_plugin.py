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

or choose faults and outcomes with a marker::

    @pytest.mark.modelreg_sandbox(faults=["status:429@POST"], fail={"oci_vision": "doomed"}, lifecycle_seconds=0.5)
    def test_it_rides_out_a_429(modelreg_sandbox): ...

Nothing heavy is imported until a test asks for the fixture: the plugin is loaded by every pytest run in an
environment that has the provider.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_modelreg.sandbox.faults import FaultRule
    from airflow_provider_modelreg.sandbox.server import SandboxServer

DEFAULT_LIFECYCLE_SECONDS = 1.0
MARKER = "modelreg_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(faults=[...], fail={{service: match}}, lifecycle_seconds=1.0): how the modelreg sandbox "
        "behaves for this test (fault rules as the sandbox's --fault, outcome rules as its --fail)",
    )


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
    built in a test needs. The DB must exist (``airflow db migrate`` in the test's AIRFLOW_HOME). A failed
    task does not raise: assert the run's ``state``.
    """
    from airflow_provider_modelreg.version_compat import quiet_dag_test_debug_logs, write_dag_to_db

    reuse_in_process_execution_api()
    quiet_dag_test_debug_logs()
    write_dag_to_db(dag)
    return dag.test()


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


@pytest.fixture
def modelreg_sandbox(
    modelreg_sandbox_server: tuple[SandboxServer, str], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> SandboxSession:
    """A freshly reset sandbox, with every default connection of the provider pointing at it."""
    server, key_file = modelreg_sandbox_server
    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker else {}
    reset_sandbox(server, float(options.get("lifecycle_seconds", DEFAULT_LIFECYCLE_SECONDS)))
    session = SandboxSession(server, key_file)
    for rule in options.get("faults", []):
        session.fault(rule)
    for service, match in dict(options.get("fail", {})).items():
        session.fail(service, match)
    for conn_id, conn in session.connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return session
