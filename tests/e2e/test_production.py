"""The provider on a production-shaped Airflow (PostgreSQL, Redis, CeleryExecutor with two workers, two
triggerers, separate scheduler, dag-processor and API server; tests/e2e/prod_stack.py), with the sandbox
and a real MLflow server as the services. One stack serves the whole module; each test is one scenario a
platform team tries before adopting the provider.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.prod_stack import PG_BIN, ROOT, ProductionStack, missing

from airflow_provider_modelreg.sandbox.faults import FaultRule

# A run of its own (./dev test): its stack lives for the whole module, and in a run with tests parametrised
# by session fixtures pytest would interleave other modules' tests while the stack runs beside them.
pytestmark = [pytest.mark.e2e, pytest.mark.production, pytest.mark.integration, pytest.mark.timeout(900)]

BLOCKED = "Triggerer's async thread was blocked"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, modelreg_sandbox_server: Any, mlflow_servers: Any
) -> Iterator[ProductionStack]:
    if reason := missing():
        pytest.fail(f"the production-shaped stack cannot start: {reason}")
    from airflow_provider_modelreg.pytest_plugin import SandboxSession, reset_sandbox

    server, key_file = modelreg_sandbox_server
    reset_sandbox(server, lifecycle_seconds=3.0)
    connections = SandboxSession(server, key_file).connections
    connections["mlflow_default"] = {"conn_type": "mlflow", "host": mlflow_servers.get().url}  # the newest
    workdir = tmp_path_factory.mktemp("production")
    dags = workdir / "dags"
    shutil.copytree(ROOT / "dags_examples", dags, ignore=shutil.ignore_patterns("__pycache__"))
    for dag_file in (Path(__file__).parent / "dags").glob("*.py"):
        shutil.copy(dag_file, dags)
    with ProductionStack(workdir, connections, dags) as running:
        yield running


@pytest.fixture
def services(stack: ProductionStack, modelreg_sandbox_server: Any) -> Any:
    """The sandbox the stack talks to, with no faults and short lifecycles (resources are kept: the stack's
    scheduled runs may be using them)."""
    sandbox = modelreg_sandbox_server[0].sandbox
    sandbox.faults.rules.clear()
    sandbox.state.outcome_rules.clear()
    sandbox.state.lifecycle_seconds.clear()
    sandbox.state.lifecycle_seconds["*"] = 3.0
    # The example DAGs' NeMo workspace, project and checkpoints (with the config.json the spec analysis reads)
    # are there first, as a user makes them: the platform refuses a model naming a missing project or fileset.
    from fixtures.nemo import prepare_nemo_platform

    prepare_nemo_platform(sandbox.state)
    return sandbox


def example_dag_ids(stack: ProductionStack) -> list[str]:
    expected = sorted(p.stem for p in (ROOT / "dags_examples").glob("*.py") if not p.stem.startswith("_"))

    def parsed() -> list[str] | None:
        found = {d["dag_id"] for d in stack.api("GET", "/api/v2/dags?limit=100")["dags"]}
        return expected if len(found & set(expected)) >= len(expected) - 1 else None

    stack.wait(parsed, 240, "the example DAGs to be parsed")
    found = {d["dag_id"] for d in stack.api("GET", "/api/v2/dags?limit=100")["dags"]}
    errors = stack.api("GET", "/api/v2/importErrors")["import_errors"]
    assert not errors, errors
    return sorted(found & set(expected))


def trigger_logs(stack: ProductionStack, dag_id: str, run_id: str) -> list[Path]:
    return list((stack.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}").glob("task_id=*/**/*.trigger.*.log"))


def test_every_example_dag_succeeds_with_its_waits_in_the_triggerers(stack: ProductionStack, services: Any):
    dag_ids = [d for d in example_dag_ids(stack) if d != "deploy_registered_models"]  # asset-scheduled
    runs = [(dag_id, stack.trigger(dag_id)) for dag_id in dag_ids]
    states = stack.wait_for_runs(runs, 600)
    failed = {
        run: {t["task_id"]: t["state"] for t in stack.task_instances(*run) if t["state"] != "success"}
        for run, state in states.items()
        if state != "success"
    }
    assert not failed, failed
    deferred = [run for run in runs if trigger_logs(stack, *run)]
    assert len(deferred) >= len(runs) // 2, "the examples' waits did not run in the triggerers"


def test_a_backfill_of_a_mapped_dag_makes_one_model_per_task_instance(stack: ProductionStack, services: Any):
    before = {m["id"] for m in services.state.all("happyrobot")}
    stack.wait(lambda: stack.api("GET", "/api/v2/dags/retrain_many_mapped"), 240, "retrain_many_mapped")
    stack.api(
        "POST",
        "/api/v2/backfills",
        {
            "dag_id": "retrain_many_mapped",
            "from_date": "2026-03-01T00:00:00Z",
            "to_date": "2026-04-05T00:00:00Z",
            "max_active_runs": 6,
            "reprocess_behavior": "completed",
        },
    )

    def backfill_runs() -> list[str] | None:
        runs = stack.api("GET", "/api/v2/dags/retrain_many_mapped/dagRuns?run_type=backfill&limit=100")["dag_runs"]
        done = [r for r in runs if r["state"] in {"success", "failed"}]
        return [r["dag_run_id"] for r in runs] if len(runs) >= 5 and len(done) == len(runs) else None

    run_ids = stack.wait(backfill_runs, 600, "the backfill")
    model_of: dict[tuple[str, int], str] = {}
    for run_id in run_ids:
        assert stack.run_state("retrain_many_mapped", run_id) == "success"
        for ti in stack.task_instances("retrain_many_mapped", run_id):
            if ti["task_id"] != "train_model":
                continue
            path = f"/api/v2/dags/retrain_many_mapped/dagRuns/{run_id}/taskInstances/train_model/xcomEntries/return_value?map_index={ti['map_index']}"
            value = stack.api("GET", path)["value"]
            model_of[(run_id, ti["map_index"])] = (value if isinstance(value, dict) else json.loads(value))["id"]
    created = {m["id"] for m in services.state.all("happyrobot")} - before
    # One distinct model per task instance: two task instances sharing one model is the failure to catch.
    assert len(model_of) == 3 * len(run_ids)
    assert len(set(model_of.values())) == len(model_of)
    assert set(model_of.values()) <= created


def triggerer_holding_waits(stack: ProductionStack) -> tuple[str, int]:
    """(component name, number of triggers) of the triggerer that runs the most triggers now."""
    sql = (
        "select j.hostname, count(t.id) from trigger t join job j on j.id = t.triggerer_id "
        "where j.job_type = 'TriggererJob' and j.state = 'running' group by j.hostname order by 2 desc limit 1"
    )
    out = subprocess.run(
        [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(stack.pg_port), "-U", "airflow", "-At", "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not out:
        return "", 0
    name, count = out.split("|")
    return name, int(count)  # the hostname is the component's name (component_hostname.py)


# The stack's triggerers run asyncio's debug mode (prod_stack.py), which logs each callback holding the loop
# over 0.1 s with its task's name and coroutine; a trigger's task is named after its task instance.
SLOW_STEP = re.compile(
    r"Executing <Task .*?name='(?P<name>[^']*)' coro=<(?P<coro>[^>]*)>.* took (?P<took>[\d.]+) seconds"
)


def slow_steps(log: str, dag_id: str) -> list[str]:
    """The slow loop steps (asyncio debug) that ran a trigger of ``dag_id`` or a task of the provider's own."""
    return [
        f"{m['took']} s in {m['name']} {m['coro']}"
        for m in SLOW_STEP.finditer(log)
        if m["name"].startswith(f"{dag_id}/") or "airflow_provider_modelreg" in m["coro"]
    ]


def test_a_killed_triggerers_waits_move_to_the_other_without_blocking_its_loop(stack: ProductionStack, services: Any):
    services.state.lifecycle_seconds["oci_vision"] = 90.0  # long enough to kill a triggerer mid-wait
    run = ("prod_many_oci_waits", stack.trigger("prod_many_oci_waits", {"count": 100}))
    holder, _count = stack.wait(
        lambda: (found := triggerer_holding_waits(stack))[1] >= 50 and found, 300, "the waits to reach a triggerer"
    )
    survivor = "triggerer-2" if holder == "triggerer-1" else "triggerer-1"
    seen = len(stack.tail(survivor, 10**8))
    stack.retire(holder)
    services.state.lifecycle_seconds["oci_vision"] = 3.0
    try:
        states = stack.wait_for_runs([run], 600)
        tis = stack.task_instances(*run)
        assert states[run] == "success", {t["map_index"]: t["state"] for t in tis if t["state"] != "success"}
        assert sum(t["task_id"] == "train" for t in tis) == 100
        # Airflow's watchdog (its 0.2 s warning) cannot say whose a block is, and with 100 tasks resuming on two
        # cores its own steps pass 0.2 s: asyncio's debug log names each slow step, and none may be ours.
        took_over = stack.tail(survivor, 10**8)[seen:]
        assert slow_steps(took_over, "prod_many_oci_waits") == [], took_over.count(BLOCKED)
    finally:
        stack.start_triggerer(int(holder[-1]))


def test_a_worker_killed_right_after_the_create_is_retried_and_finds_its_own_model(
    stack: ProductionStack, services: Any
):
    services.state.lifecycle_seconds["happyrobot"] = 60.0  # the task is still waiting when its worker dies
    run = ("prod_sync_wait", stack.trigger("prod_sync_wait"))

    def created() -> list[dict[str, Any]]:
        return [m for m in services.state.all("happyrobot") if m["use_case_id"] == "uc-crash"]

    stack.wait(created, 240, "the create")
    for name in ("worker-1", "worker-2"):  # whichever runs it: kill -9 both, then start fresh ones
        stack.retire(name)
    services.state.lifecycle_seconds["happyrobot"] = 3.0
    for n in (3, 4):
        stack.start_worker(n)
    states = stack.wait_for_runs([run], 600)
    ti = next(t for t in stack.task_instances(*run) if t["task_id"] == "train")
    assert states[run] == "success", ti
    assert ti["try_number"] >= 2  # it was really interrupted and retried
    assert len(created()) == 1


def test_waits_ride_out_sixty_seconds_of_503(stack: ProductionStack, services: Any):
    services.state.lifecycle_seconds["*"] = 5.0
    before = {service: len(services.state.all(service)) for service in ("happyrobot", "nemo")}
    runs = [(dag_id, stack.trigger(dag_id)) for dag_id in ("happyrobot_train", "nemo_register_model")]
    stack.wait(  # the creates are done, so what follows meets the waits
        lambda: all(len(services.state.all(service)) > count for service, count in before.items()),
        300,
        "both creates",
    )
    services.faults.rules.append(
        FaultRule(kind="status", status=503, method="GET", path="^/(api/v1|apis)/", count=None)
    )
    time.sleep(60)  # the outage itself (what the test is about), not a wait for something to happen
    services.faults.rules.clear()
    states = stack.wait_for_runs(runs, 300)
    assert set(states.values()) == {"success"}, {
        run: [(t["task_id"], t["state"], t["try_number"]) for t in stack.task_instances(*run)] for run in runs
    }


# -- the connection form in a real browser (Debian's Chromium, driven from .venv-prod's selenium) ------------
BROWSER_DRIVER = Path(__file__).parent / "connection_form.py"
STANDARD_FIELDS = ("host", "schema", "login", "password", "port")


def in_browser(stack: ProductionStack, plan: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run tests/e2e/connection_form.py in .venv-prod against the stack's API server: what a person saw."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.fail("Debian's chromium and chromium-driver are not installed (./dev setup installs them)")
    folder.mkdir(parents=True, exist_ok=True)
    every_screenshot = bool(os.environ.get("MODELREG_SCREENSHOTS"))  # else only the saves, edits and pages
    from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES

    extra_fields = {d["hook-name"]: list(d["conn-fields"]) for d in CONNECTION_TYPES}  # what each type shows
    plan = {"base": stack.base, "screenshots": str(folder), "every_screenshot": every_screenshot, **plan}
    plan["extra_fields"] = extra_fields
    (folder / "plan.json").write_text(json.dumps(plan))
    python = ROOT / ".venv-prod" / "bin" / "python"
    done = subprocess.run(
        [str(python), str(BROWSER_DRIVER), str(folder / "plan.json")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    print(f"browser: {seen['seconds']} s, screenshots in {folder}\n{done.stderr}")
    assert "error" not in seen, f"{seen['error']} (screenshots in {folder})"
    return seen


def screenshots(tmp_path: Path) -> Path:
    """Where the browser's screenshots go: ``MODELREG_SCREENSHOTS`` to keep them, else the test's tmp_path."""
    return Path(os.environ.get("MODELREG_SCREENSHOTS") or tmp_path)


def test_the_connection_form_in_a_real_browser(stack: ProductionStack, services: Any, tmp_path: Path):
    """Each connection type of the provider shows its declared fields in Airflow's form, secrets masked; an
    OCI API-key connection typed into the form (auth_type chosen, every other field at the form's default,
    the key pasted) works: through REST connections/test (the UI's Test button sends port 0 in 3.3.2) and
    in a DAG whose deferred wait reads it. The MLflow run link of an example DAG opens the run in the UI."""
    from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES

    mlflow_run = ("mlflow_log_and_register", stack.trigger("mlflow_log_and_register"))  # runs meanwhile
    sandbox_oci = stack.connections["oci_default"]
    pem = Path(sandbox_oci["extra"]["key_file"]).read_text()
    typed = {k: sandbox_oci["extra"][k] for k in ("tenancy", "user", "fingerprint", "region")}
    seen = in_browser(
        stack,
        {
            "inspect": [d["hook-name"] for d in CONNECTION_TYPES],
            "save": {
                "conn_id": "oci_from_form",
                "label": "Oracle Cloud Infrastructure",
                "standard": {"host": sandbox_oci["host"]},
                "choose": {"auth_type": "api_key"},
                "extra": typed,
                "paste": {"private_key": pem},
            },
        },
        screenshots(tmp_path) / "form",
    )

    for definition in CONNECTION_TYPES:
        fields = {f["name"]: f for f in seen["forms"][definition["hook-name"]]}
        behaviour = definition["ui-field-behaviour"]
        declared = {f"element_{name}": spec for name, spec in definition["conn-fields"].items()}
        standard = {n for n in STANDARD_FIELDS if n not in behaviour["hidden-fields"]}
        assert set(fields) == {"connection_id", "description", *standard, *declared}, definition["connection-type"]
        assert all(f["shown"] for f in fields.values()), definition["connection-type"]
        for name, spec in declared.items():
            assert fields[name]["label"] == spec["label"]
            if None in spec["schema"].get("enum", ()):  # the unset option shows its display text, not "null"
                shown = fields[name]["text"].splitlines()
                assert "null" not in shown and spec["schema"]["values_display"]["null"] in shown, shown
            secret = spec["schema"].get("format") == "password"
            assert (fields[name]["type"] == "password") == secret, name  # masked exactly when secret
        for name, label in behaviour.get("relabeling", {}).items():
            assert fields[name]["label"] == label
        if "password" in standard:
            assert fields["password"]["type"] == "password"

    saved = seen["save"]
    assert saved["closed"] and "Connection has been successfully created" in saved["page_text"]
    edit = {f["name"]: f for f in seen["edit"]["fields"]}
    assert edit["element_private_key"]["type"] == "password" and edit["element_private_key"]["value"] == "***"
    body_line = pem.splitlines()[1]
    assert body_line not in seen["edit"]["page_source"]  # the key never reaches the page again

    stored = stack.api("GET", "/api/v2/connections/oci_from_form")
    extra = json.loads(stored["extra"])
    assert stored["conn_type"] == "oci_vision" and extra["auth_type"] == "api_key"
    assert extra["profile"] == "DEFAULT" and extra["private_key"] == "***"  # the form's default, kept
    # The form's own values, as the UI's Test button would send them (less its port 0).
    tested = stack.api("POST", "/api/v2/connections/test", stored)
    assert tested["status"] is True, tested

    run = ("prod_form_connection", stack.trigger("prod_form_connection"))
    assert stack.wait_for_runs([run, mlflow_run], 300) == {run: "success", mlflow_run: "success"}
    trained = [
        m for m in services.state.all("oci_vision") if m.get("displayName") == "trained-through-the-form-connection"
    ]
    assert len(trained) == 1  # one model, through the connection saved in the form
    assert trigger_logs(stack, *run), "the wait did not run in a triggerer"

    # The MLflow run link Airflow's UI shows, opened in the browser: MLflow's UI renders that run.
    links = stack.api("GET", f"/api/v2/dags/{mlflow_run[0]}/dagRuns/{mlflow_run[1]}/taskInstances/log_run/links")
    link = links["extra_links"]["MLflow run"]
    mlflow_url = stack.connections["mlflow_default"]["host"]
    assert link.startswith(f"{mlflow_url}/#/experiments/")
    run_id = link.rsplit("/", 1)[1]
    page = in_browser(
        stack, {"open": {"mlflow_run": link}, "open_wait_for": {"mlflow_run": run_id}}, screenshots(tmp_path) / "link"
    )
    assert run_id in page["pages"]["mlflow_run"]["text"], page["pages"]["mlflow_run"]["text"][:2000]


def test_marking_a_deferred_training_failed_cancels_its_work_request(stack: ProductionStack, services: Any):
    from airflow_provider_modelreg.sandbox.oci_vision import view

    services.state.lifecycle_seconds["oci_vision"] = 300.0  # still training when the user marks it failed
    dag_id = "prod_cancel_on_mark_failed"
    run_id = stack.trigger(dag_id)

    def waiting_in_a_triggerer() -> bool:
        # DEFERRED is not enough: marked failed before a triggerer has run the trigger, nothing runs on_kill.
        logs = "".join(p.read_text(errors="replace") for p in trigger_logs(stack, dag_id, run_id))
        return "is CREATING; next check" in logs

    stack.wait(waiting_in_a_triggerer, 240, "the training's wait to run in a triggerer")
    [model] = [m for m in services.state.all("oci_vision") if m.get("displayName") == "cancel-me"]
    assert view(services.state, model)["lifecycleState"] == "CREATING"
    stack.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/train", {"new_state": "failed"})
    try:
        stack.wait(lambda: model.get("_canceled"), 60, "the triggerer to cancel the work request")
    except TimeoutError as exc:  # the trigger log says why (every path of the cancel logs a line)
        logged = "".join(p.read_text(errors="replace") for p in trigger_logs(stack, dag_id, run_id))
        raise AssertionError(f"{exc}; the trigger's log ends:\n{logged[-3000:]}") from None
    shown = view(services.state, model)
    assert shown["lifecycleState"] == "FAILED" and "CANCELED" in shown["lifecycleDetails"]
    assert stack.run_state(dag_id, run_id) == "failed"
    logged = "".join(p.read_text(errors="replace") for p in trigger_logs(stack, dag_id, run_id))
    assert "its training work request was cancelled (the task was marked failed)" in logged, logged[-3000:]


def test_a_sensor_started_from_the_trigger_never_occupies_a_worker(stack: ProductionStack, services: Any):
    """A worker that runs a task instance writes its hostname on the task instance (ti_run); the triggerer does
    not. So a sensor seen DEFERRED with no hostname has had no worker yet, not even for a first poke; the
    plain deferrable sensor beside it, seen DEFERRED with a worker's hostname, shows the observable works."""
    import httpx

    from airflow_provider_modelreg.sandbox.keys import HAPPYROBOT_API_KEY

    services.state.lifecycle_seconds["happyrobot"] = 40.0
    sandbox_url = stack.connections["happyrobot_default"]["host"]
    model = httpx.post(
        f"{sandbox_url}/models",
        headers={"authorization": f"Bearer {HAPPYROBOT_API_KEY}"},
        json={
            "use_case_id": "uc-sensor",
            "name": "watched",
            "from_model_id": "d" * 24,
            "train_sample_ids": ["s1"],
            "test_sample_ids": [],
        },
    ).json()
    dag_id = "prod_sensor_from_trigger"
    run_id = stack.trigger(dag_id, {"model_id": model["id"]})
    hostnames_while_deferred: dict[str, str] = {}

    def both_seen_deferred() -> bool:
        for ti in stack.task_instances(dag_id, run_id):
            if ti["state"] == "deferred":
                hostnames_while_deferred.setdefault(ti["task_id"], ti.get("hostname") or "")
        return len(hostnames_while_deferred) == 2

    stack.wait(both_seen_deferred, 240, "both sensors to defer")
    assert hostnames_while_deferred["deferred"], "the control sensor's first poke ran in a worker"
    assert hostnames_while_deferred["from_trigger"] == "", "a worker ran the sensor started from the trigger"
    assert stack.wait_for_runs([(dag_id, run_id)], 240)[(dag_id, run_id)] == "success"
    tis = {t["task_id"]: t for t in stack.task_instances(dag_id, run_id)}
    assert tis["from_trigger"]["try_number"] == 1 and tis["from_trigger"]["hostname"]  # execute_complete's worker
    assert trigger_logs(stack, dag_id, run_id)  # both waited in a triggerer
