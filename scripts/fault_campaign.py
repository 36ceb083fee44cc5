"""Fault campaign: many create-and-wait task instances across the five APIs against the sandbox, with injected
faults, killed workers and retried tasks; then an audit of what the sandbox holds.

Each cycle is one task instance (dag ``fault_campaign``, task = the API, run id of this campaign, map index =
the cycle number) run like a worker runs it: the operator's ``execute(context)`` with a minimal task-instance
context (dag_id, task_id, run_id, map_index, try_number, xcom_push; dag_run.run_after). A deferred wait runs
the real ``LifecycleTrigger``, rebuilt from its serialised kwargs as a triggerer does, then
``execute_complete`` on a fresh operator object (a new worker). A failed try is retried up to
``--max-tries`` (Airflow's ``retries``), with the same task-instance identity and the next try number.

Faults (``sandbox/faults.py``), drawn per request: HTTP 429 with Retry-After, 500, 502, 503, dropped
connections before the service acts, dropped answers after it acted (``drop_after``; more often on creates),
and slow answers. Workers are killed right after a create was sent, two ways:

* in-process (``--kill-share`` of the cycles): try 1 sends its create, then dies (a BaseException nothing in
  the provider catches), before it can read the answer or look anything up;
* real ``SIGKILL`` (``--sigkill`` per API): try 1 runs in a subprocess whose create is processed by the
  sandbox but whose answer is dropped; the process is killed as soon as the sandbox has stored the resource.

Then try 2 runs to completion. The audit counts resources per idempotency identity (duplicates: more than one
resource for one task instance) and losses (a succeeded task whose returned resource is not the one in the
sandbox, or a resource no task instance owns). It exits 1 when either is not 0.

Timing is the only thing changed for speed: every client uses a fast retry policy (``--retry-*``), lifecycles
last ``--lifecycle`` seconds and polls are 0.1 s apart.

Run: ``.venv/bin/python scripts/fault_campaign.py`` (``--help`` for the knobs; ``--json`` for the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("happyrobot", "oci_vision", "mlflow_run", "mlflow_model_version", "nemo")
DAG_ID = "fault_campaign"
HAPPYROBOT_KEY = "sandbox-happyrobot-key"
OCI_TENANCY = "ocid1.tenancy.oc1..campaigntenancy"
OCI_USER = "ocid1.user.oc1..campaignuser"
OCI_FINGERPRINT = "fa:u1:70:00:00:00:00:00:00:00:00:00:00:00:00:00"
OCI_KEY_ID = f"{OCI_TENANCY}/{OCI_USER}/{OCI_FINGERPRINT}"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaacampaigncompartment"
PROJECT = "ocid1.aivisionproject.oc1.iad.amaaaaaacampaignproject"
DATASET = "ocid1.datalabelingdataset.oc1.iad.amaaaaaacampaigndataset"
PLATFORM_ID = "ocid1.aidataplatform.oc1.iad.campaignplatform"
WORKSPACE_KEY = "ws-campaign"
NEMO_WORKSPACE = "campaign"
CONN_IDS = {
    "happyrobot": "fc_happyrobot",
    "oci_vision": "fc_oci",
    "mlflow_run": "fc_aidp",
    "mlflow_model_version": "fc_aidp",
    "nemo": "fc_nemo",
}
# The create call of each API: where a worker is killed, and where the SIGKILL run drops the answer.
CREATE_CALLS = {
    "happyrobot": r"^/api/v1/models$",
    "oci_vision": r"^/20220125/models$",
    "mlflow_run": r"/runs/create$",
    "mlflow_model_version": r"/model-versions/create$",
    "nemo": r"^/apis/models/v2/workspaces/[^/]+/models$",
}
# The sandbox counter each create bumps when it stores the resource.
CREATED_COUNTERS = {
    "happyrobot": "happyrobot.created",
    "oci_vision": "oci_vision.created",
    "mlflow_run": "mlflow.runs.created",
    "mlflow_model_version": "mlflow.model_versions.created",
    "nemo": "nemo.created",
}
SHARED_NAMES = 3  # experiments and registered models are shared by several task instances (concurrent creates)


class WorkerKilled(BaseException):
    """The worker died: nothing in the provider catches a BaseException that is not its own."""


# -- environment (before Airflow is imported) ----------------------------------------------------------------
def prepare_environment(home: str | None) -> str:
    """A throw-away AIRFLOW_HOME (no run touches ~/airflow), inherited by the SIGKILL subprocesses."""
    home = home or os.environ.get("MODELREG_CAMPAIGN_HOME") or tempfile.mkdtemp(prefix="modelreg-campaign-")
    os.environ["MODELREG_CAMPAIGN_HOME"] = home
    os.environ["AIRFLOW_HOME"] = home
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(home, "dags")
    return home


def use_fast_retries(max_attempts: int, base_delay: float, max_delay: float) -> None:
    """Every ServiceClient (hooks, triggers, OCI's own default) gets this retry policy: timing only."""
    from airflow_provider_modelreg.http import RetryPolicy, ServiceClient

    policy = RetryPolicy(max_attempts=max_attempts, base_delay=base_delay, max_delay=max_delay, total_budget=60.0)
    original = ServiceClient.__init__

    def init(self: ServiceClient, **kwargs: Any) -> None:
        original(self, **(kwargs | {"retry": policy}))

    ServiceClient.__init__ = init  # type: ignore[method-assign]


def quiet_airflow_logs(path: str, level: str) -> None:
    """Task logs (structlog and stdlib) go to a file, so the console shows only the figures."""
    from airflow.sdk.log import configure_logging

    configure_logging(log_level=level, output=open(path, "a", buffering=1))  # noqa: SIM115 - lives as long as we do


# -- connections -------------------------------------------------------------------------------------------
def connections(sandbox_url: str, private_pem: str) -> dict[str, dict[str, Any]]:
    oci = {
        "tenancy": OCI_TENANCY,
        "user": OCI_USER,
        "fingerprint": OCI_FINGERPRINT,
        "private_key": private_pem,
        "region": "us-ashburn-1",
    }
    return {
        "fc_happyrobot": {"conn_type": "happyrobot", "host": f"{sandbox_url}/api/v1", "password": HAPPYROBOT_KEY},
        "fc_oci": {"conn_type": "oci", "host": sandbox_url, "extra": oci},
        "fc_aidp": {
            "conn_type": "oci_aidp",
            "host": sandbox_url,
            "extra": oci | {"ai_data_platform_id": PLATFORM_ID, "workspace_key": WORKSPACE_KEY},
        },
        "fc_nemo": {"conn_type": "nemo_platform", "host": sandbox_url, "extra": {"workspace": NEMO_WORKSPACE}},
    }


def set_connections(conns: dict[str, dict[str, Any]]) -> None:
    for conn_id, conn in conns.items():
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)


# -- one task instance -------------------------------------------------------------------------------------
@dataclass
class Cycle:
    """One task instance of the campaign and what happened to it."""

    index: int
    kind: str
    deferrable: bool
    kill: str | None = None  # None, "in-process" or "sigkill"
    tries: int = 0
    outcome: str = "not run"  # succeeded, failed
    result: Any = None
    errors: list[str] = field(default_factory=list)
    killed: bool = False
    killed_after_processed_create: bool | None = None
    deferred: int = 0


def build_operator(kind: str, index: int, deferrable: bool) -> Any:
    """The operator of one cycle; every try builds a new one, as a new worker would."""
    common: dict[str, Any] = {
        "task_id": kind,
        "conn_id": CONN_IDS[kind],
        "deferrable": deferrable,
        "poll_interval": 0.1,
        "wait_timeout": 120.0,
    }
    if kind == "happyrobot":
        from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

        return HappyRobotCreateModelOperator(
            use_case_id="fc-use-case",
            name=f"fc-hr-{index}",
            from_model_id="f" * 24,
            train_sample_ids=[f"s-{index}"],
            test_sample_ids=["t-1"],
            **common,
        )
    if kind == "oci_vision":
        from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

        return OCIVisionCreateModelOperator(
            compartment_id=COMPARTMENT,
            project_id=PROJECT,
            model_type="OBJECT_DETECTION",
            training_dataset={"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": DATASET},
            display_name=f"fc-vision-{index}",
            is_quick_mode=True,
            **common,
        )
    if kind == "mlflow_run":
        from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

        return MlflowCreateRunOperator(
            experiment_name=f"fc-experiment-{index % SHARED_NAMES}",
            run_params={"cycle": index, "lr": 0.01},
            metrics={"precision": 0.9, "recall": {"value": 0.8, "step": 1}},
            tags={"campaign": "faults"},
            **(common | {"wait_for_completion": True}),
        )
    if kind == "mlflow_model_version":
        from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator

        return MlflowCreateModelVersionOperator(
            name=f"fc-model-{index % SHARED_NAMES}",
            source=f"oci://models@campaign/cycle-{index}",
            run_id=f"{index:032x}",
            tags={"cycle": index},
            **common,
        )
    if kind == "nemo":
        from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

        return NemoCreateModelOperator(
            name=f"fc-nemo-{index}",
            fileset=f"{NEMO_WORKSPACE}/checkpoint-{index}",
            base_model="meta/llama-3.1-8b-instruct",
            finetuning_type="lora_merged",
            **common,
        )
    raise ValueError(kind)


def make_context(kind: str, index: int, try_number: int, run_id: str, run_after: datetime) -> dict[str, Any]:
    xcoms: dict[str, Any] = {}
    ti = SimpleNamespace(
        dag_id=DAG_ID,
        task_id=kind,
        run_id=run_id,
        map_index=index,
        try_number=try_number,
        xcom_push=lambda key, value: xcoms.__setitem__(key, value),
        xcom_pull=lambda task_ids=None, key="return_value", **_: None,
    )
    return {"ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(run_id=run_id, run_after=run_after)}


async def first_event(trigger: Any) -> dict[str, Any]:
    try:
        async for event in trigger.run():
            return dict(event.payload)
    finally:
        await trigger.cleanup()
    return {"status": "error", "message": "the trigger ended without an event"}


def run_try(
    cycle: Cycle, try_number: int, run_id: str, run_after: datetime, kill_on: Callable[[Any], bool] | None
) -> Any:
    """One try of the task instance: execute, and when it defers, the trigger and execute_complete."""
    from airflow.sdk.module_loading import import_string

    from airflow_provider_modelreg.http import ServiceError
    from airflow_provider_modelreg.version_compat import TaskDeferred

    operator = build_operator(cycle.kind, cycle.index, cycle.deferrable)
    context = make_context(cycle.kind, cycle.index, try_number, run_id, run_after)
    if kill_on is not None:
        client = operator.hook.client
        send = client.request
        # CREATE_CALLS are the paths the sandbox sees; a client's request path is relative to its base URL
        # (HappyRobot's ``/models`` under ``/api/v1``), so match the whole path or the kill never fires.
        base_path = urlsplit(client.base_url).path.rstrip("/")

        def request_then_die(req: Any) -> Any:
            if not kill_on(SimpleNamespace(method=req.method, path=base_path + req.path)):
                return send(req)
            with contextlib.suppress(ServiceError):  # the answer is what the dead worker never reads
                send(req)
            raise WorkerKilled(f"worker killed right after {req.method} {req.path}")

        client.request = request_then_die  # type: ignore[method-assign]
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        cycle.deferred += 1
        classpath, kwargs = deferred.trigger.serialize()
        # What a triggerer does: the class from its path, built from the stored kwargs (JSON round trip).
        trigger = import_string(classpath)(**json.loads(json.dumps(kwargs)))
        event = asyncio.run(first_event(trigger))
        resumed = build_operator(cycle.kind, cycle.index, cycle.deferrable)  # a new worker resumes
        return getattr(resumed, deferred.method_name)(context, event=event, **(deferred.kwargs or {}))


def run_task_instance(
    cycle: Cycle,
    run_id: str,
    run_after: datetime,
    max_tries: int,
    first_try: int = 1,
    identity_exists: Callable[[Cycle], bool] | None = None,
) -> Cycle:
    from airflow_provider_modelreg.version_compat import AirflowFailException

    pattern = re.compile(CREATE_CALLS[cycle.kind])
    for try_number in range(first_try, max_tries + 1):
        cycle.tries = try_number
        kill_on = None
        if cycle.kill == "in-process" and try_number == 1:

            def kill_on(req: Any) -> bool:
                return req.method == "POST" and bool(pattern.search(req.path))

        try:
            cycle.result = run_try(cycle, try_number, run_id, run_after, kill_on)
            cycle.outcome = "succeeded"
            return cycle
        except WorkerKilled:
            cycle.killed = True
            if identity_exists is not None:
                cycle.killed_after_processed_create = identity_exists(cycle)
            cycle.errors.append(f"try {try_number}: worker killed after the create was sent")
        except AirflowFailException as exc:  # Airflow does not retry these
            cycle.errors.append(f"try {try_number}: {type(exc).__name__}: {exc}")
            cycle.outcome = "failed"
            return cycle
        except Exception as exc:
            cycle.errors.append(f"try {try_number}: {type(exc).__name__}: {exc}")
    cycle.outcome = "failed"
    return cycle


def sabotage_idempotency() -> None:
    """For checking the audit itself: creates without the look-up before create and without stable retry
    tokens, as a provider without idempotency would do. The campaign must then report duplicates."""
    import uuid

    from airflow_provider_modelreg.http import ServiceError
    from airflow_provider_modelreg.operators import happyrobot, mlflow, nemo, oci_vision

    def create_blindly(*, find: Any, create: Any, retry: Any, logger: Any, sleep: Any = time.sleep) -> Any:
        for attempt in range(1, retry.max_attempts + 1):
            try:
                return create(), True
            except ServiceError as exc:
                if not exc.retryable or attempt == retry.max_attempts:
                    raise
                sleep(retry.delay(attempt, exc.retry_after))
        raise AssertionError("unreachable")

    for module in (happyrobot, mlflow, nemo):
        module.create_once = create_blindly  # type: ignore[attr-defined]
    oci_vision.idempotency_key = lambda context: uuid.uuid4().hex  # type: ignore[attr-defined]


# -- the audit ---------------------------------------------------------------------------------------------
def identity_key(kind: str, index: int, run_id: str) -> Any:
    """What makes a resource this task instance's own, as stored by the sandbox."""
    from airflow_provider_modelreg.idempotency import idempotency_key

    if kind == "happyrobot":  # the name the operator sends carries the task instance's key
        from airflow_provider_modelreg.operators.happyrobot import name_for_task_instance

        return name_for_task_instance(
            f"fc-hr-{index}", make_context(kind, index, 1, run_id, datetime.now(timezone.utc))
        )
    if kind == "oci_vision":
        return f"fc-vision-{index}"
    if kind == "mlflow_run":
        return idempotency_key(make_context(kind, index, 1, run_id, datetime.now(timezone.utc)))
    if kind == "mlflow_model_version":
        return (f"fc-model-{index % SHARED_NAMES}", f"oci://models@campaign/cycle-{index}")
    return (NEMO_WORKSPACE, f"fc-nemo-{index}")


def resources_by_identity(state: Any) -> dict[str, dict[Any, list[dict[str, Any]]]]:
    from airflow_provider_modelreg.hooks.mlflow import IDEMPOTENCY_TAG

    def group(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, list[dict[str, Any]]]:
        out: dict[Any, list[dict[str, Any]]] = {}
        for record in records:
            out.setdefault(key(record), []).append(record)
        return out

    return {
        "happyrobot": group(state.all("happyrobot"), lambda r: r["name"]),
        "oci_vision": group(state.all("oci_vision"), lambda r: r.get("displayName")),
        "mlflow_run": group(state.all("mlflow.runs"), lambda r: r["_tags"].get(IDEMPOTENCY_TAG)),
        "mlflow_model_version": group(state.all("mlflow.model_versions"), lambda r: (r["name"], r["source"])),
        "nemo": group(state.all("nemo"), lambda r: (r["workspace"], r["name"])),
        "mlflow.experiments": group(state.all("mlflow.experiments"), lambda r: r["name"]),
        "mlflow.registered_models": group(state.all("mlflow.registered_models"), lambda r: r["name"]),
    }


def returned_matches(kind: str, result: Any, record: dict[str, Any]) -> bool:
    """The succeeded task's return value names this resource."""
    if not isinstance(result, dict):
        return False
    if kind in ("happyrobot", "oci_vision"):
        return result.get("id") == record["id"]
    if kind == "mlflow_run":
        return result.get("run_id") == record["run_id"]
    if kind == "mlflow_model_version":
        return (result.get("name"), str(result.get("version"))) == (record["name"], record["version"])
    return (result.get("workspace"), result.get("name"), result.get("id")) == (
        record["workspace"],
        record["name"],
        record["id"],
    )


@dataclass
class Audit:
    duplicates: int = 0
    lost: int = 0
    unowned: int = 0
    left_by_failed_tasks: int = 0
    details: list[str] = field(default_factory=list)


def audit(state: Any, cycles: list[Cycle], run_id: str) -> Audit:
    found = resources_by_identity(state)
    result = Audit()
    owned: dict[str, set[Any]] = {kind: set() for kind in KINDS}
    for cycle in cycles:
        key = identity_key(cycle.kind, cycle.index, run_id)
        owned[cycle.kind].add(key)
        records = found[cycle.kind].get(key, [])
        if len(records) > 1:
            result.duplicates += len(records) - 1
            result.details.append(f"duplicate: {cycle.kind} #{cycle.index} has {len(records)} resources")
        if cycle.outcome == "succeeded":
            if not any(returned_matches(cycle.kind, cycle.result, r) for r in records):
                result.lost += 1
                result.details.append(f"lost: {cycle.kind} #{cycle.index} returned a resource the sandbox lacks")
        elif records:
            result.left_by_failed_tasks += 1
    for kind in KINDS:
        for key, records in found[kind].items():
            if key not in owned[kind]:
                result.unowned += len(records)
                result.details.append(f"unowned: {len(records)} {kind} resource(s) with identity {key!r}")
    for shared in ("mlflow.experiments", "mlflow.registered_models"):
        for name, records in found[shared].items():
            if len(records) > 1:
                result.duplicates += len(records) - 1
                result.details.append(f"duplicate: {shared} {name!r} x{len(records)}")
    result.lost += result.unowned
    return result


# -- the sandbox and its faults ----------------------------------------------------------------------------
class RequestCounter:
    """ASGI wrapper counting the API requests that reach the sandbox (admin calls excluded)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.total = 0
        self.by_method: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/_sandbox"):
            self.total += 1  # one event loop thread: no lock needed
            self.by_method[scope["method"]] += 1
        await self.app(scope, receive, send)


def fault_rules(scale: float) -> list[Any]:
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    def p(value: float) -> float:
        return min(1.0, value * scale)

    creates = "|".join(f"(?:{pattern})" for pattern in CREATE_CALLS.values())
    return [
        # The ambiguous case on the calls that matter most: the create happened, its answer is lost.
        FaultRule(kind="drop_after", method="POST", path=creates, count=None, probability=p(0.08)),
        FaultRule(kind="status", status=429, retry_after=0.05, count=None, probability=p(0.05)),
        FaultRule(kind="status", status=500, count=None, probability=p(0.04)),
        FaultRule(kind="status", status=502, count=None, probability=p(0.04)),
        FaultRule(kind="status", status=503, count=None, probability=p(0.04)),
        FaultRule(kind="drop", count=None, probability=p(0.04)),
        FaultRule(kind="drop_after", count=None, probability=p(0.04)),
        FaultRule(kind="latency", delay=0.15, count=None, probability=p(0.04)),
    ]


def start_sandbox(lifecycle: float, seed: int) -> tuple[Any, RequestCounter, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from airflow_provider_modelreg.sandbox.app import Sandbox
    from airflow_provider_modelreg.sandbox.oci_vision import NOT_FOUND_SECONDS
    from airflow_provider_modelreg.sandbox.server import SandboxServer

    sandbox = Sandbox()
    counter = RequestCounter(sandbox.app)
    sandbox.app = counter
    sandbox.faults._random = random.Random(seed)  # reproducible draws (thread interleaving still varies)
    state = sandbox.state
    state.lifecycle_seconds["*"] = lifecycle
    state.extra[NOT_FOUND_SECONDS] = min(0.1, lifecycle / 4)  # OCI's short 404 window after a create
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state.oci_public_keys[OCI_KEY_ID] = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    server = SandboxServer(sandbox).start()
    return server, counter, private_pem


# -- SIGKILL ------------------------------------------------------------------------------------------------
def sigkill_try(server: Any, cycle: Cycle, run_id: str, run_after: datetime, log_path: str) -> bool | None:
    """Try 1 in a subprocess; the sandbox processes its create but drops the answer; the process is killed
    as soon as the resource is stored. Returns whether the kill came after the create (None: it never came)."""
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    state, faults = server.sandbox.state, server.sandbox.faults
    counter = CREATED_COUNTERS[cycle.kind]
    before = state.counters.get(counter, 0)
    # Only the dropped create answer while the child runs: its other calls are not what is tested here.
    saved, faults.rules = faults.rules, [FaultRule(kind="drop_after", method="POST", path=CREATE_CALLS[cycle.kind])]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a cached child starts in a fraction of the time
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "modelreg-campaign-pycache")
    spec = {"kind": cycle.kind, "index": cycle.index, "run_id": run_id, "run_after": run_after.isoformat()}
    with open(log_path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(spec), "--log-file", log_path],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    processed: bool | None = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if state.counters.get(counter, 0) > before:
                processed = True
                break
            if child.poll() is not None:
                break
            time.sleep(0.005)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        faults.rules = saved
    return processed


def child_main(spec_text: str, log_path: str) -> int:
    """Try 1 of a task instance, in its own process, waiting to be killed."""
    spec = json.loads(spec_text)
    # Slow client retries: after the dropped answer the worker sleeps, so the kill lands before any lookup.
    use_fast_retries(max_attempts=6, base_delay=5.0, max_delay=10.0)
    quiet_airflow_logs(log_path, "WARNING")
    cycle = Cycle(index=spec["index"], kind=spec["kind"], deferrable=False)
    run_try(cycle, 1, spec["run_id"], datetime.fromisoformat(spec["run_after"]), None)
    return 0


# -- main ---------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=400, help="task instances in the threaded phase (default 400)")
    parser.add_argument("--workers", type=int, default=8, help="task instances run at once (default 8)")
    parser.add_argument("--fault-scale", type=float, default=1.0, help="multiplies every fault probability")
    parser.add_argument("--kill-share", type=float, default=0.15, help="share of cycles killed after the create")
    parser.add_argument("--sigkill", type=int, default=2, help="SIGKILLed subprocess workers per API (default 2)")
    parser.add_argument("--max-tries", type=int, default=3, help="tries per task instance (retries + 1)")
    parser.add_argument("--lifecycle", type=float, default=0.4, help="seconds a sandbox lifecycle lasts")
    parser.add_argument("--retry-attempts", type=int, default=6, help="client attempts per call (default 6)")
    parser.add_argument("--retry-base", type=float, default=0.02, help="client backoff base, seconds")
    parser.add_argument("--retry-max", type=float, default=0.2, help="client backoff ceiling, seconds")
    parser.add_argument("--seed", type=int, default=8, help="random seed of the cycle plan and the fault draws")
    parser.add_argument("--log-file", default=None, help="task logs (default: in the throw-away AIRFLOW_HOME)")
    parser.add_argument("--log-level", default="INFO", help="level of the task log file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--sabotage",
        action="store_true",
        help="turn the provider's idempotency off, to see the audit catch duplicates (exits 1)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = prepare_environment(None)
    log_path = args.log_file or os.path.join(home, "campaign-tasks.log")
    if args.child:
        return child_main(args.child, log_path)

    started = time.monotonic()
    use_fast_retries(args.retry_attempts, args.retry_base, args.retry_max)
    quiet_airflow_logs(log_path, args.log_level)
    retries = Counter()

    class RetryCounter(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "; retry " in record.getMessage():
                retries["client retries"] += 1

    logging.getLogger("airflow_provider_modelreg.http").addHandler(RetryCounter(level=logging.WARNING))

    if args.sabotage:
        sabotage_idempotency()
    server, requests, private_pem = start_sandbox(args.lifecycle, args.seed)
    set_connections(connections(server.url, private_pem))
    server.sandbox.faults.rules.extend(fault_rules(args.fault_scale))
    run_id = f"campaign__{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    run_after = datetime.now(timezone.utc)
    plan = random.Random(args.seed)
    cycles = [
        Cycle(
            index=i,
            kind=KINDS[i % len(KINDS)],
            deferrable=plan.random() < 0.5,
            kill="in-process" if plan.random() < args.kill_share else None,
        )
        for i in range(args.cycles)
    ]
    state = server.sandbox.state
    from airflow_provider_modelreg.sandbox.nemo import add_fileset

    for cycle in cycles:  # each NeMo cycle's checkpoint is uploaded (a missing fileset is the platform's 400)
        add_fileset(state, f"{NEMO_WORKSPACE}/checkpoint-{cycle.index}")

    def exists(cycle: Cycle) -> bool:
        return bool(resources_by_identity(state)[cycle.kind].get(identity_key(cycle.kind, cycle.index, run_id)))

    print(
        f"Fault campaign: {args.cycles} task instances on {args.workers} threads, then "
        f"{args.sigkill * len(KINDS)} SIGKILLed workers; sandbox {server.url}; task log {log_path}",
        flush=True,
    )
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(lambda c: run_task_instance(c, run_id, run_after, args.max_tries, 1, exists), cycles))
    threaded_seconds = time.monotonic() - started

    # SIGKILL phase: one at a time, so the dropped answer is the child's own.
    sigkill_cycles = []
    for n in range(args.sigkill * len(KINDS)):
        cycle = Cycle(index=args.cycles + n, kind=KINDS[n % len(KINDS)], deferrable=False, kill="sigkill")
        add_fileset(state, f"{NEMO_WORKSPACE}/checkpoint-{cycle.index}")  # as for the threaded cycles
        cycle.tries, cycle.killed = 1, True
        cycle.killed_after_processed_create = sigkill_try(server, cycle, run_id, run_after, log_path)
        cycle.errors.append("try 1: SIGKILL after the create was sent")
        run_task_instance(cycle, run_id, run_after, args.max_tries, first_try=2)
        sigkill_cycles.append(cycle)
    all_cycles = cycles + sigkill_cycles
    server.sandbox.faults.rules.clear()
    result = audit(state, all_cycles, run_id)
    server.stop()

    injected = dict(sorted(server.sandbox.faults.injected.items()))
    faults = sum(injected.values())
    errors = faults - injected.get("latency", 0)
    succeeded = [c for c in all_cycles if c.outcome == "succeeded"]
    failed = [c for c in all_cycles if c.outcome != "succeeded"]
    kills = [c for c in all_cycles if c.killed]
    figures = {
        "mode": "operator.execute(context) per try outside a DAG (minimal task-instance context); deferred waits "
        "through the real LifecycleTrigger rebuilt from its serialised kwargs, then execute_complete",
        "cycles_run": len(all_cycles),
        "cycles_by_api": dict(Counter(c.kind for c in all_cycles)),
        "deferred_waits": sum(c.deferred for c in all_cycles),
        "requests_served": requests.total,
        "faults_injected": faults,
        "faults_by_kind": injected,
        "fault_share": round(faults / requests.total, 3) if requests.total else 0.0,
        "error_fault_share": round(errors / requests.total, 3) if requests.total else 0.0,
        "client_retries": retries["client retries"],
        "workers_killed_after_create": len(kills),
        "kills_in_process": sum(1 for c in kills if c.kill == "in-process"),
        "kills_sigkill": sum(1 for c in kills if c.kill == "sigkill"),
        "kills_after_a_processed_create": sum(1 for c in kills if c.killed_after_processed_create),
        "tries_run": sum(c.tries for c in all_cycles),
        "tasks_retried": sum(1 for c in all_cycles if c.tries > 1),
        "tasks_succeeded": len(succeeded),
        "tasks_failed": len(failed),
        "duplicates": result.duplicates,
        "resources_lost": result.lost,
        "resources_unowned": result.unowned,
        "resources_left_by_failed_tasks": result.left_by_failed_tasks,
        "seconds": round(time.monotonic() - started, 1),
        "seconds_threaded_phase": round(threaded_seconds, 1),
    }
    print_report(figures, failed, result)
    if args.json:
        print(json.dumps(figures, indent=2))
    # A campaign that ran nothing proves nothing: no success or no fault fails it too.
    return 1 if result.duplicates or result.lost or not succeeded or not faults else 0


def print_report(figures: dict[str, Any], failed: list[Cycle], result: Audit) -> None:
    by_kind = ", ".join(f"{k} {v}" for k, v in figures["faults_by_kind"].items())
    by_api = ", ".join(f"{k} {v}" for k, v in figures["cycles_by_api"].items())
    lines = [
        f"How: {figures['mode']}.",
        f"cycles run ............................ {figures['cycles_run']} ({by_api})",
        f"deferred waits (trigger) .............. {figures['deferred_waits']}",
        f"requests served by the sandbox ........ {figures['requests_served']}",
        f"faults injected ....................... {figures['faults_injected']} "
        f"({figures['fault_share']:.1%} of requests; errors and drops alone {figures['error_fault_share']:.1%})",
        f"  by kind ............................. {by_kind}",
        f"client retries ........................ {figures['client_retries']}",
        f"workers killed right after a create ... {figures['workers_killed_after_create']} "
        f"(in-process {figures['kills_in_process']}, SIGKILL {figures['kills_sigkill']}; "
        f"the service had processed the create in {figures['kills_after_a_processed_create']})",
        f"tries run ............................. {figures['tries_run']} "
        f"({figures['tasks_retried']} task instances retried)",
        f"tasks succeeded ....................... {figures['tasks_succeeded']} of {figures['cycles_run']}",
        f"duplicates found in the sandbox ....... {figures['duplicates']}",
        f"resources lost ........................ {figures['resources_lost']} "
        f"(of which owned by no task instance: {figures['resources_unowned']})",
        f"time .................................. {figures['seconds']} s",
    ]
    print("\n".join(lines))
    for cycle in failed[:10]:
        print(f"  failed: {cycle.kind} #{cycle.index}: {'; '.join(cycle.errors)[-400:]}")
    for detail in result.details[:20]:
        print(f"  {detail}")
    verdict = "PASS" if not (figures["duplicates"] or figures["resources_lost"]) else "FAIL"
    print(f"{verdict}: {figures['duplicates']} duplicates, {figures['resources_lost']} resources lost")


if __name__ == "__main__":
    sys.exit(main())
