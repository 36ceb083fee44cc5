"""MLflow operators in real DAGs, each test run against a real ``mlflow server`` and the sandbox's OCI AI
Data Platform flavour (``mlflow_target``); what they logged is read back from the server."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.mlflow import HOOK_CONN_ID
from fixtures.mlflow_runs import FlakyRunOperator

from airflow_provider_modelreg.hooks.mlflow import IDEMPOTENCY_TAG
from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
from airflow_provider_modelreg.sandbox.state import OutcomeRule

pytestmark = pytest.mark.integration

CONN = "mlf"
NO_RETRY = {"retries": 0}
ONE_QUICK_RETRY = {"retries": 1, "retry_delay": dt.timedelta(seconds=0)}
VISION_METRICS = {"precision": 0.91, "recall": 0.84, "displayName": "defects", "testImageCount": 120}


def dag_with(dag_id: str, build, default_args: dict | None = None, params: dict | None = None):
    """A DAG whose upstream task ``train_vision`` returns a Vision-like model (the XCom to log from)."""
    from airflow.sdk import DAG, task

    with DAG(
        dag_id,
        schedule=None,
        start_date=dt.datetime(2024, 1, 1),
        catchup=False,
        default_args=default_args or NO_RETRY,
        params=params or {},
    ) as dag:

        @task(task_id="train_vision")
        def train_vision() -> dict[str, Any]:
            return dict(VISION_METRICS)

        train_vision() >> build()
    return dag


def tag_map(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


# -- MlflowCreateRunOperator ------------------------------------------------------------------------------
def test_logs_a_run_from_arguments_templates_and_xcom_and_closes_it_finished(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return MlflowCreateRunOperator(
            task_id="log_run",
            conn_id=CONN,
            experiment_name=experiment,
            run_params={"epochs": 10, "lr": "{{ params.lr }}"},
            metrics={
                "loss": {"value": 0.2, "step": 5, "timestamp": 1_700_000_000_000},
                "precision_templated": "{{ ti.xcom_pull(task_ids='train_vision')['precision'] }}",
            },
            metrics_from="train_vision",
            metric_keys={"precision": "precision", "vision.recall": "recall"},
            tags={"team": "vision"},
        )

    result = run_dag(dag_with("mlflow_log_run", build, params={"lr": 0.01}), {CONN: mlflow_target.conn})
    assert result.state == "success"
    out = result.xcom("log_run")
    assert out["status"] == "FINISHED"
    assert result.extra_links("log_run") == {"MLflow run": out["run_url"]}  # None for the AI Data Platform

    [run] = mlflow_target.runs_of(experiment)
    info, data = run["info"], run["data"]
    assert info["run_id"] == out["run_id"] and info["status"] == "FINISHED"
    assert 0 < info["start_time"] <= info["end_time"]
    assert {p["key"]: p["value"] for p in data["params"]} == {"epochs": "10", "lr": "0.01"}
    metrics = {m["key"]: m for m in data["metrics"]}
    assert {k: m["value"] for k, m in metrics.items()} == {
        "loss": 0.2,
        "precision_templated": 0.91,
        "precision": 0.91,
        "vision.recall": 0.84,
    }
    assert (metrics["loss"]["step"], metrics["loss"]["timestamp"]) == (5, 1_700_000_000_000)
    tags = tag_map(run)
    assert tags["team"] == "vision" and tags["airflow.dag_id"] == "mlflow_log_run"
    assert tags["airflow.task_id"] == "log_run" and len(tags[IDEMPOTENCY_TAG]) == 40
    assert tags["mlflow.runName"] == info["run_name"] == f"mlflow_log_run.log_run.{result.run_id}"


def log_run_dag(dag_id: str, experiment: str):
    return dag_with(
        dag_id,
        lambda: MlflowCreateRunOperator(task_id="log_run", conn_id=CONN, experiment_name=experiment, metrics={"m": 1}),
    )


@pytest.mark.mlflow_server
def test_the_run_link_opens_the_runs_page_on_the_mlflow_servers_ui(run_dag, mlflow_server):
    """The link Airflow's UI shows is the tracking server's MLflow UI route of the run: the server serves
    that page (a single-page app: the part after ``#`` is the browser's) and the run's REST API there
    names the same run and experiment. Credentials in the tracking URI are basic auth, never in the link."""
    experiment = f"link-{uuid.uuid4().hex[:8]}"
    conn = {"conn_type": "mlflow", "host": mlflow_server.url.replace("://", "://alice:pw-in-uri@")}
    result = run_dag(log_run_dag("mlflow_run_link", experiment), {CONN: conn})
    assert result.state == "success"
    out = result.xcom("log_run")
    link = result.extra_links("log_run")["MLflow run"]
    assert link == f"{mlflow_server.url}/#/experiments/{out['experiment_id']}/runs/{out['run_id']}"
    assert "alice" not in link and "pw-in-uri" not in link
    page_url, _, route = link.partition("#")
    page = httpx.get(page_url, timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>MLflow</title>" in page.text and 'id="root"' in page.text  # MLflow's React UI
    _, experiment_id, _, run_id = route.strip("/").split("/")
    api = httpx.get(f"{page_url.rstrip('/')}/api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10)
    assert api.json()["run"]["info"]["experiment_id"] == experiment_id


def test_an_ai_data_platform_run_has_no_link_unless_ui_url_says_where_run_pages_are(run_dag, aidp_target):
    """The endpoint serves the API only (its root plus MLflow's route is a 404): no link without
    ``ui_url``; with a template the link is the template with the run's ids, and holds no key."""
    experiment = aidp_target.unique("link")
    result = run_dag(log_run_dag("aidp_run_link_none", experiment), {CONN: aidp_target.conn})
    assert result.state == "success"
    assert result.xcom("log_run")["run_url"] is None
    assert result.extra_links("log_run") == {"MLflow run": None}  # Airflow's UI shows no button

    template = "https://aidp.example.com/workspaces/ws/experiments/{experiment_id}/runs/{run_id}?tab=overview"
    conn = aidp_target.conn | {"extra": aidp_target.conn["extra"] | {"ui_url": template}}
    result = run_dag(log_run_dag("aidp_run_link_template", experiment), {CONN: conn})
    out = result.xcom("log_run")
    link = result.extra_links("log_run")["MLflow run"]
    assert link == template.format(experiment_id=out["experiment_id"], run_id=out["run_id"]) == out["run_url"]
    secret_values = [v for k, v in conn["extra"].items() if k in {"private_key", "passphrase", "key_file"}]
    assert secret_values and not any(str(v) in link for v in secret_values)


@pytest.mark.parametrize(
    ("ui_url", "rule"),
    [
        ("https://ui.example/{experiment_id}", "a template must contain {run_id}"),
        ("https://ui.example/{run}", "unknown placeholder"),
        ("https://bob:pw@ui.example/{run_id}", "must not hold credentials"),
        ("ui.example/{run_id}", "must be an http(s) URL"),
    ],
)
def test_a_malformed_ui_url_fails_the_task_before_anything_is_sent(run_dag, aidp_target, ui_url, rule, monkeypatch):
    experiment = aidp_target.unique("badlink")
    conn = aidp_target.conn | {"extra": aidp_target.conn["extra"] | {"ui_url": ui_url}}
    result = run_dag(log_run_dag("aidp_bad_ui_url", experiment), {CONN: conn})
    assert result.state == "failed"
    assert aidp_target.hook().get_experiment_by_name(experiment) is None  # not even the experiment was made
    monkeypatch.setenv(f"AIRFLOW_CONN_{HOOK_CONN_ID.upper()}", json.dumps(conn))
    with pytest.raises(ValueError, match=re.escape(f"ui_url: {rule}")) as refused:
        _ = aidp_target.hook().run_page  # what the task's build_request reads
    assert "pw" not in str(refused.value)


def test_all_numeric_xcom_entries_are_logged_when_no_keys_are_given(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return MlflowCreateRunOperator(
            task_id="log_run", conn_id=CONN, experiment_name=experiment, metrics_from="train_vision"
        )

    assert run_dag(dag_with("mlflow_log_all", build), {CONN: mlflow_target.conn}).state == "success"
    [run] = mlflow_target.runs_of(experiment)
    assert {m["key"] for m in run["data"]["metrics"]} == {"precision", "recall", "testImageCount"}


class FailingLogOperator(MlflowCreateRunOperator):
    """Logging fails after the run exists (as a server refusing a batch would)."""

    def log_to_run(self, log: Any) -> None:
        super().log_to_run(log)
        raise RuntimeError("injected failure while logging")


def test_a_failure_while_logging_marks_the_run_failed(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return FailingLogOperator(task_id="log_run", conn_id=CONN, experiment_name=experiment, metrics={"a": 1.0})

    result = run_dag(dag_with("mlflow_log_fails", build), {CONN: mlflow_target.conn})
    assert result.state == "failed" and result.task_state("log_run") == "failed"
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["status"] == "FAILED" and run["info"]["end_time"] > 0


@pytest.mark.parametrize(
    "arguments",
    [
        {"metrics": {"bad name!": 1.0}},
        {"run_params": {"a b/../c": 1}},
        {"tags": {"/abs": "x"}},
        {"experiment_name": "e" * 501},
    ],
    ids=["metric-bad-character", "param-path", "tag-absolute", "experiment-name-501"],
)
def test_keys_and_names_breaking_mlflows_rules_fail_before_anything_is_sent(run_dag, mlflow_target, arguments):
    experiment = mlflow_target.unique("vision")

    def build():
        return MlflowCreateRunOperator(
            **({"task_id": "log_run", "conn_id": CONN, "experiment_name": experiment} | arguments)
        )

    result = run_dag(dag_with("mlflow_bad_keys", build), {CONN: mlflow_target.conn})
    assert result.task_state("log_run") == "failed"
    assert mlflow_target.hook().get_experiment_by_name(experiment) is None  # no experiment, no run


def test_a_bad_metric_value_fails_before_anything_is_sent(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return MlflowCreateRunOperator(
            task_id="log_run",
            conn_id=CONN,
            experiment_name=experiment,
            metrics_from="train_vision",
            metric_keys={"name": "displayName"},  # a string, not a number
        )

    result = run_dag(dag_with("mlflow_bad_metric", build), {CONN: mlflow_target.conn})
    assert result.task_state("log_run") == "failed"
    assert mlflow_target.hook().get_experiment_by_name(experiment) is None  # no experiment, no run


def test_a_retried_task_reuses_its_run(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return FlakyRunOperator(
            task_id="log_run",
            conn_id=CONN,
            experiment_name=experiment,
            run_params={"epochs": 10},
            metrics={"loss": {"value": 0.2, "timestamp": 1_700_000_000_000}},
        )

    result = run_dag(dag_with("mlflow_retry_run", build, ONE_QUICK_RETRY), {CONN: mlflow_target.conn})
    assert result.state == "success" and result.try_number("log_run") == 2
    [run] = mlflow_target.runs_of(experiment)  # one run, not two
    assert run["info"]["status"] == "FINISHED" and run["info"]["run_id"] == result.xcom("log_run")["run_id"]
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"epochs": "10"}


def test_close_run_false_leaves_the_run_running(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return MlflowCreateRunOperator(
            task_id="log_run", conn_id=CONN, experiment_name=experiment, metrics={"m": 1}, close_run=False
        )

    result = run_dag(dag_with("mlflow_open_run", build), {CONN: mlflow_target.conn})
    assert result.state == "success" and result.xcom("log_run")["status"] == "RUNNING"
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["status"] == "RUNNING"


@pytest.mark.parametrize(("ti_state", "run_status"), [("failed", "KILLED"), ("running", "RUNNING")])
def test_on_kill_marks_the_run_killed_only_when_the_task_was_marked_failed(
    mlflow_target, monkeypatch, ti_state, run_status
):
    """SIGTERM comes both from a user marking the task failed and from a worker shutting down: only the
    first ends the run (the second's retry reconnects to it)."""
    from types import SimpleNamespace

    from airflow_provider_modelreg import cancellation
    from airflow_provider_modelreg.models.mlflow import CreateRunRequest

    monkeypatch.setattr(cancellation, "task_instance_state", lambda *_args: ti_state)
    hook = mlflow_target.hook()
    experiment_id = hook.get_or_create_experiment(mlflow_target.unique("vision"))["experiment_id"]
    run_id = hook.create_run(CreateRunRequest(experiment_id=experiment_id))["info"]["run_id"]
    operator = MlflowCreateRunOperator(task_id="log_run", conn_id="mlflow_target", experiment_name="x")
    operator._run_id = run_id  # what execute() records once the run exists
    operator._owner_ti = SimpleNamespace(dag_id="d", task_id="log_run", run_id="r", map_index=-1)
    operator.on_kill()
    info = hook.get_run(run_id)["info"]
    assert info["status"] == run_status
    assert (info.get("end_time") is not None) == (run_status == "KILLED")


class KilledWhileLoggingOperator(MlflowCreateRunOperator):
    """What a SIGTERM does mid-task: Airflow calls on_kill, then the task's code is interrupted."""

    def log_to_run(self, log: Any) -> None:
        self.on_kill()
        raise RuntimeError("terminated")


def test_a_task_killed_while_logging_leaves_the_run_killed_not_failed(run_dag, mlflow_target, monkeypatch):
    from airflow_provider_modelreg import cancellation

    monkeypatch.setattr(cancellation, "task_instance_state", lambda *_args: "failed")  # a user marked it failed
    experiment = mlflow_target.unique("vision")

    def build():
        return KilledWhileLoggingOperator(task_id="log_run", conn_id=CONN, experiment_name=experiment)

    result = run_dag(dag_with("mlflow_killed", build), {CONN: mlflow_target.conn})
    assert result.task_state("log_run") == "failed"
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["status"] == "KILLED"


# -- MlflowCreateModelVersionOperator -------------------------------------------------------------------
def registry_dag(dag_id: str, experiment: str, model: str, version_cls=MlflowCreateModelVersionOperator, **kwargs):
    default_args = kwargs.pop("default_args", None)

    def build():
        log_run = MlflowCreateRunOperator(
            task_id="log_run", conn_id=CONN, experiment_name=experiment, metrics_from="train_vision"
        )
        register = version_cls(
            task_id="register",
            conn_id=CONN,
            name=model,
            source="runs:/{{ ti.xcom_pull(task_ids='log_run')['run_id'] }}/model",
            run_id="{{ ti.xcom_pull(task_ids='log_run')['run_id'] }}",
            description="defect detector",
            tags={"stage": "candidate"},
            poll_interval=0.2,
            **kwargs,
        )
        log_run >> register
        return log_run

    return dag_with(dag_id, build, default_args)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_registers_a_version_and_waits_until_ready(run_dag, mlflow_target, lifecycle_triggers, deferrable):
    model = mlflow_target.unique("model")
    dag = registry_dag(f"mlflow_register_{deferrable}", mlflow_target.unique("vision"), model, deferrable=deferrable)
    result = run_dag(dag, {CONN: mlflow_target.conn})
    assert result.state == "success"
    version = result.xcom("register")
    assert (version["name"], version["version"], version["status"]) == (model, "1", "READY")
    assert version["run_id"] == result.xcom("log_run")["run_id"]
    assert {"key": "stage", "value": "candidate"} in version["tags"]
    assert mlflow_target.hook().get_registered_model(model)["name"] == model
    if mlflow_target.is_sandbox:
        # The sandbox keeps a version PENDING_REGISTRATION for a second: deferred means a trigger waited.
        assert bool(lifecycle_triggers) is deferrable
        if deferrable:
            assert lifecycle_triggers[0]["ref"] == {
                "api": mlflow_target.hook().registry_api,
                "name": model,
                "version": "1",
            }


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_failed_registration_fails_with_the_status_message(run_dag, sandbox, aidp_conn, capfd, deferrable):
    sandbox.sandbox.state.outcome_rules.append(
        OutcomeRule(service="mlflow", match="doomed", reason="model flavor not supported: onnx-legacy")
    )
    dag = registry_dag(f"mlflow_register_fails_{deferrable}", "vision", "doomed-model", deferrable=deferrable)
    result = run_dag(dag, {CONN: aidp_conn})
    assert result.state == "failed" and result.task_state("register") == "failed"
    assert result.try_number("register") == 1  # a terminal state is not retried
    out = capfd.readouterr().out
    assert "MLflow model version name=doomed-model, version=1 ended FAILED_REGISTRATION" in out
    assert "model flavor not supported: onnx-legacy" in out


def lose_the_first_answer(monkeypatch: pytest.MonkeyPatch, path_end: str) -> list[str]:
    """The first POST to ``path_end`` reaches the server, then its answer is lost (connection dropped)."""
    from airflow_provider_modelreg.http import ServiceClient, ServiceError

    lost: list[str] = []
    real = ServiceClient.request

    def request(self: ServiceClient, req: Any) -> Any:
        response = real(self, req)
        if req.method == "POST" and req.path.endswith(path_end) and not lost:
            lost.append(req.path)
            raise ServiceError(
                service=self.service, method=req.method, path=req.path, status=None, code=None, message="dropped"
            )
        return response

    monkeypatch.setattr(ServiceClient, "request", request)
    return lost


@pytest.mark.parametrize("path_end", ["experiments/create", "registered-models/create"])
def test_a_lost_answer_to_a_create_is_recovered_within_the_try(run_dag, mlflow_target, monkeypatch, path_end):
    """No Airflow retry (retries=0): the try looks the experiment or model up and carries on."""
    experiment, model = mlflow_target.unique("vision"), mlflow_target.unique("model")
    lost = lose_the_first_answer(monkeypatch, path_end)
    result = run_dag(registry_dag("mlflow_lost_answer", experiment, model), {CONN: mlflow_target.conn})
    assert lost and result.state == "success" and result.try_number("register") == 1
    assert len(mlflow_target.runs_of(experiment)) == 1
    assert [v["version"] for v in mlflow_target.hook().search_model_versions(f"name='{model}'")] == ["1"]


class FinishThenFailOperator(MlflowCreateRunOperator):
    """Its first try closes the run FINISHED, then fails: the retry meets a finished run."""

    def create(self, context: Any, plan: Any) -> dict[str, Any]:
        run = super().create(context, plan)
        if context["ti"].try_number == 1:
            raise RuntimeError("injected failure after the run was closed")
        return run


def test_a_retry_whose_param_changed_is_refused_and_leaves_the_finished_run_as_it_was(run_dag, mlflow_target):
    experiment = mlflow_target.unique("vision")

    def build():
        return FinishThenFailOperator(
            task_id="log_run", conn_id=CONN, experiment_name=experiment, run_params={"lr": "{{ ti.try_number }}"}
        )

    result = run_dag(dag_with("mlflow_param_changed", build, ONE_QUICK_RETRY), {CONN: mlflow_target.conn})
    assert result.task_state("log_run") == "failed" and result.try_number("log_run") == 2
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["status"] == "FINISHED"  # not reopened, not FAILED
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"lr": "1"}


def test_overlapping_tries_of_one_task_instance_make_one_run(mlflow_target):
    """Two tries racing: each finds nothing, each creates; both settle on one run, the other is deleted."""
    experiment = mlflow_target.unique("vision")
    results = race(
        lambda: MlflowCreateRunOperator(
            task_id="log_run", conn_id=HOOK_CONN_ID, experiment_name=experiment, run_params={"lr": 1}
        ),
        "create_run",
    )
    assert len({r["info"]["run_id"] for r in results}) == 1
    [run] = mlflow_target.runs_of(experiment)
    assert run["info"]["run_id"] == results[0]["info"]["run_id"] and run["info"]["status"] == "FINISHED"


def test_overlapping_tries_of_one_task_instance_make_one_version(mlflow_target):
    model = mlflow_target.unique("model")
    results = race(
        lambda: MlflowCreateModelVersionOperator(
            task_id="register", conn_id=HOOK_CONN_ID, name=model, source="s3://models/churn/current"
        ),
        "create_model_version",
    )
    assert {r["version"] for r in results} == {"1"}
    versions = mlflow_target.hook().search_model_versions(f"name='{model}'")
    assert [v["version"] for v in versions] == ["1"]


def race(make: Any, name: str) -> list[Any]:
    """Run two tries of one task instance at once, both past their lookup before either creates."""
    from types import SimpleNamespace

    barrier = threading.Barrier(2, timeout=30)
    results: list[Any] = []
    errors: list[BaseException] = []

    def attempt(try_number: int) -> None:
        ti = SimpleNamespace(
            dag_id="race",
            task_id="t",
            run_id=f"manual__{id(barrier)}",
            map_index=-1,
            try_number=try_number,
            xcom_push=lambda **kw: None,
        )
        context = {"ti": ti}
        copy = make()
        hook = copy.hook
        real = getattr(hook, name)

        def create_after_both_looked(*args: Any, **kwargs: Any) -> Any:
            barrier.wait()
            return real(*args, **kwargs)

        setattr(hook, name, create_after_both_looked)
        try:
            results.append(copy.create(context, copy.build_request(context)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


class FlakyVersionOperator(MlflowCreateModelVersionOperator):
    """Fails its first try right after creating the version: the retry must return that version."""

    def create(self, context: Any, request: Any) -> dict[str, Any]:
        version = super().create(context, request)
        if context["ti"].try_number == 1:
            raise RuntimeError("injected failure after the create")
        return version


def test_a_retried_task_returns_the_version_made_before(run_dag, mlflow_target):
    model = mlflow_target.unique("model")
    dag = registry_dag(
        "mlflow_register_retry",
        mlflow_target.unique("vision"),
        model,
        version_cls=FlakyVersionOperator,
        default_args=ONE_QUICK_RETRY,
    )
    result = run_dag(dag, {CONN: mlflow_target.conn})
    assert result.state == "success" and result.try_number("register") == 2
    assert result.xcom("register")["version"] == "1"
    assert [v["version"] for v in mlflow_target.hook().search_model_versions(f"name='{model}'")] == ["1"]


def test_a_later_dag_run_registering_the_same_fixed_source_makes_a_new_version(run_dag, mlflow_target):
    model = mlflow_target.unique("model")

    def build():
        return MlflowCreateModelVersionOperator(
            task_id="register", conn_id=CONN, name=model, source="s3://models/churn/current", poll_interval=0.2
        )

    dag = dag_with("mlflow_register_fixed_source", build)
    first, second = (run_dag(dag, {CONN: mlflow_target.conn}) for _ in range(2))
    assert (first.xcom("register")["version"], second.xcom("register")["version"]) == ("1", "2")
    versions = mlflow_target.hook().search_model_versions(f"name='{model}'")
    assert sorted(v["version"] for v in versions) == ["1", "2"]  # one per task instance


@pytest.mark.parametrize("length", [5000, 5001, 8000, 8001])
def test_tag_values_over_the_servers_limit_fail_before_anything_is_sent(run_dag, mlflow_target, length):
    model = mlflow_target.unique("model")
    # MLflow 2.x takes 5000, 3.x 100,000, the AI Data Platform 8000: the hook reads which server it is.
    limit = {"3": 100_000, "2": 5000}[mlflow_target.server.version[0]] if mlflow_target.server else 8000

    def build():
        return MlflowCreateModelVersionOperator(
            task_id="register",
            conn_id=CONN,
            name=model,
            source="s3://m/x",
            tags={"notes": "n" * length},
            poll_interval=0.2,
        )

    result = run_dag(dag_with("mlflow_register_long_tag", build), {CONN: mlflow_target.conn})
    assert result.task_state("register") == ("success" if length <= limit else "failed")
    assert (mlflow_target.hook().get_registered_model(model) is None) is (length > limit)


# Refused by MLflow 3's rule; MLflow 2 and the AI Data Platform's seed page take them.
@pytest.mark.parametrize("name", ["a/b", "a:b", "../x"])
def test_registered_model_names_follow_the_rule_of_the_server_in_hand(run_dag, mlflow_target, name):
    name = f"{name}-{uuid.uuid4().hex[:8]}"
    refused = mlflow_target.server is not None and not mlflow_target.server.version.startswith("2.")

    def build():
        return MlflowCreateModelVersionOperator(task_id="register", conn_id=CONN, name=name, source="s3://m/x")

    result = run_dag(dag_with("mlflow_register_bad_name", build), {CONN: mlflow_target.conn})
    assert result.task_state("register") == ("failed" if refused else "success")
    if refused:  # nothing was made (MLflow 3 refuses even to read such a name, so list what exists)
        assert name not in {
            m["name"]
            for m in httpx.get(
                f"{mlflow_target.server.url}/api/2.0/mlflow/registered-models/search", params={"max_results": 1000}
            )
            .json()
            .get("registered_models", [])
        }
    else:
        assert mlflow_target.hook().get_registered_model(name)["name"] == name
    if mlflow_target.server is not None:  # the real server agrees: it refuses exactly these names itself
        answer = httpx.post(
            f"{mlflow_target.server.url}/api/2.0/mlflow/registered-models/create", json={"name": f"{name}-direct"}
        )
        assert (answer.status_code == 400) is refused, answer.text


def test_a_name_holding_both_quotes_is_registered_and_a_retry_finds_its_version(run_dag, mlflow_target):
    """MLflow takes such a name; its filter grammar cannot quote it, so the version is found with LIKE."""
    model = f"""{mlflow_target.unique("model")} say "hi" it's"""
    dag = registry_dag(
        "mlflow_register_quotes",
        mlflow_target.unique("vision"),
        model,
        version_cls=FlakyVersionOperator,
        default_args=ONE_QUICK_RETRY,
    )
    result = run_dag(dag, {CONN: mlflow_target.conn})
    assert result.state == "success" and result.try_number("register") == 2
    assert result.xcom("register")["version"] == "1" and result.xcom("register")["name"] == model
    hook = mlflow_target.hook()
    assert hook.get_registered_model(model)["name"] == model
    assert [v["version"] for v in hook.search_model_versions(f"name LIKE '{model.replace(chr(39), '_')}'")] == ["1"]
    if mlflow_target.is_sandbox:  # one registered model and one version: the retry made nothing more
        state = mlflow_target.sandbox.sandbox.state
        assert [r["name"] for r in state.all("mlflow.registered_models")] == [model]
        assert len(state.all("mlflow.model_versions")) == 1


def test_invalid_version_arguments_fail_before_anything_is_sent(run_dag, mlflow_target):
    model = mlflow_target.unique("model")

    def build():
        return MlflowCreateModelVersionOperator(
            task_id="register", conn_id=CONN, name=model, source="s3://bucket/" + "x" * 500
        )

    result = run_dag(dag_with("mlflow_register_invalid", build), {CONN: mlflow_target.conn})
    assert result.task_state("register") == "failed"
    assert mlflow_target.hook().get_registered_model(model) is None


# -- the example DAG ------------------------------------------------------------------------------------
def test_the_example_dag_runs(run_dag, mlflow_target, monkeypatch):
    path = Path(__file__).resolve().parents[2] / "dags_examples" / "mlflow_log_and_register.py"
    spec = importlib.util.spec_from_file_location("mlflow_log_and_register_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    dag.params["experiment_name"] = mlflow_target.unique("example")
    dag.params["model_name"] = mlflow_target.unique("example-model")
    result = run_dag(dag, {"mlflow_default": mlflow_target.conn})
    assert result.state == "success", result.task_states()
    assert result.xcom("wait_until_ready")["status"] == "READY"
