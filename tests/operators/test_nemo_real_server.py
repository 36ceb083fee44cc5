"""NemoCreateModelOperator and NemoModelSpecSensor in real DAGs (``dag.test``, deferred and not) against NVIDIA's
real NeMo Platform server, whose spec-analysis job runs NVIDIA's own task on a tiny checkpoint
(tests/fixtures/nemo_server.py): the spec they return is the one NVIDIA's code derived."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import pytest
from fixtures.nemo_server import NemoServer
from fixtures.waiting import wait_until

from airflow_provider_modelreg.hooks.nemo import SPEC_JOB_RUNNING
from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator
from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor

pytestmark = [pytest.mark.integration, pytest.mark.nemo_server]

CONN = "nemo_real"


@pytest.fixture
def platform(nemo_server: NemoServer) -> tuple[NemoServer, str]:
    """A workspace of its own on the real server, holding fileset ``ckpt`` (the tiny checkpoint), ``deeper`` (the
    same weights under a config one layer deeper) and ``empty`` (no checkpoint)."""
    workspace = nemo_server.workspace()
    nemo_server.fileset(workspace, "ckpt")
    nemo_server.fileset(workspace, "deeper")
    config = (
        (nemo_server.tiny_checkpoint() / "config.json")
        .read_text()
        .replace('"num_hidden_layers": 2', '"num_hidden_layers": 3')
    )
    answer = nemo_server.http.put(
        f"/apis/files/v2/workspaces/{workspace}/filesets/deeper/-/config.json", content=config
    )
    assert answer.status_code == 200, answer.text
    nemo_server.fileset(workspace, "empty", checkpoint=False)
    return nemo_server, workspace


def connection(server: NemoServer) -> dict:
    return {"conn_type": "nemo_platform", "host": server.url}


def create_dag(dag_id: str, workspace: str, **kwargs):
    from airflow.sdk import DAG

    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        NemoCreateModelOperator(
            task_id="register", conn_id=CONN, workspace=workspace, poll_interval=0.5, wait_timeout=300, **kwargs
        )
    return dag


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_the_operator_registers_and_returns_the_spec_nvidias_task_derived(run_dag, platform, deferrable):
    server, workspace = platform
    dag = create_dag(f"nemo_real_{deferrable}", workspace, name="tiny-bot", fileset="ckpt", deferrable=deferrable)
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "success"
    spec = result.xcom("register")["spec"]
    assert (spec["checkpoint_model_name"], spec["num_layers"], spec["hidden_size"]) == ("LlamaForCausalLM", 2, 64)
    assert spec["base_num_parameters"] == 106816


def test_a_failed_spec_job_fails_the_task_at_once_with_the_jobs_message(run_dag, platform, capfd):
    server, workspace = platform
    dag = create_dag("nemo_real_no_checkpoint", workspace, name="hollow-bot", fileset="empty", retries=2)
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "failed" and result.try_number("register") == 1
    out = capfd.readouterr().out
    assert "ended SPEC_ANALYSIS_ERROR" in out
    assert "Job exited with non-zero code 1, check logs for details." in out


def test_a_project_that_does_not_exist_is_refused_and_nothing_is_created(run_dag, platform, capfd):
    server, workspace = platform
    dag = create_dag("nemo_real_ghost_project", workspace, name="ghostly", project="ghost", retries=2)
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "failed" and result.try_number("register") == 1
    assert f"Project 'ghost' does not exist in workspace '{workspace}'" in capfd.readouterr().out
    assert server.http.get(f"/apis/models/v2/workspaces/{workspace}/models/ghostly").status_code == 404


def newest_spec_job(server: NemoServer, workspace: str, name: str) -> dict[str, Any] | None:
    """The entity's newest spec-analysis job, as the real jobs API lists it."""
    jobs = server.http.get(
        f"/apis/jobs/v2/workspaces/{workspace}/jobs", params={"filter[source]": "models-system", "sort": "-created_at"}
    ).json()["data"]
    wanted = f"Model Spec Analyzer for model {workspace}/{name}"
    return next((job for job in jobs if job["description"] == wanted), None)


def patched_to_a_new_fileset(server: NemoServer, workspace: str, name: str) -> None:
    """``name`` with ckpt's spec (2 layers), then PATCHed to ``deeper`` (3 layers) whose spec job now runs."""
    created = server.http.post(f"/apis/models/v2/workspaces/{workspace}/models", json={"name": name, "fileset": "ckpt"})
    assert created.status_code == 201, created.text
    path = f"/apis/models/v2/workspaces/{workspace}/models/{name}"
    wait_until(lambda: server.http.get(path).json()["spec"], lambda spec: spec is not None, 300, "the first spec")
    assert server.http.patch(path, json={"fileset": "deeper"}).json()["spec"]["num_layers"] == 2
    job = newest_spec_job(server, workspace, name)
    assert job is not None and job["status"] in SPEC_JOB_RUNNING  # NVIDIA's task takes seconds to write the spec
    assert server.http.get(path).json()["spec"]["num_layers"] == 2  # the old spec, meanwhile


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_after_a_patch_the_sensor_returns_the_new_filesets_spec(run_dag, platform, deferrable):
    """The real server answers the old fileset's spec while the new job runs; the sensor waits for the new one."""
    from airflow.sdk import DAG

    server, workspace = platform
    name = f"moving-{str(deferrable).lower()}"
    patched_to_a_new_fileset(server, workspace, name)

    with DAG(f"nemo_real_sensor_{deferrable}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        NemoModelSpecSensor(
            task_id="wait", conn_id=CONN, name=name, workspace=workspace, deferrable=deferrable, poke_interval=0.5
        )
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "success"
    assert result.xcom("wait")["spec"]["num_layers"] == 3
    assert newest_spec_job(server, workspace, name)["status"] == "completed"


def test_after_a_patch_the_trigger_started_in_the_triggerer_waits_for_the_new_spec(platform, monkeypatch, task_context):
    """start_from_trigger: no poke runs in a worker first; the trigger alone waits for the new fileset's spec."""
    import asyncio
    import json

    from airflow_provider_modelreg.lifecycle import LifecycleTrigger

    server, workspace = platform
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(connection(server)))
    patched_to_a_new_fileset(server, workspace, "moving-trigger")
    sensor = NemoModelSpecSensor(
        task_id="wait", conn_id=CONN, name="{{ name }}", workspace=workspace, start_from_trigger=True, poke_interval=0.5
    )
    trigger = LifecycleTrigger(**sensor.start_trigger_args.trigger_kwargs)
    trigger.name = "moving-trigger"  # what the triggerer's render_template_fields writes

    async def first_event() -> Any:
        try:
            async for event in trigger.run():
                return event.payload
        finally:
            await trigger.cleanup()

    event = asyncio.run(asyncio.wait_for(first_event(), 300))
    assert event["status"] == "success", event
    assert newest_spec_job(server, workspace, "moving-trigger")["status"] == "completed"
    sensor.name = "moving-trigger"
    assert sensor.execute_complete(task_context(), event)["spec"]["num_layers"] == 3


class DiesWhileTheSpecJobRuns(NemoCreateModelOperator):
    """Its first try is killed while the real spec-analysis job runs, right after the create answered (as a
    worker OOM or kill -9 would): the record the create left is all its retry has."""

    creates: ClassVar[int] = 0
    job_status_at_death: ClassVar[str | None] = None
    server: ClassVar[NemoServer | None] = None

    def create(self, context: Any, request: Any) -> Any:
        type(self).creates += 1
        return super().create(context, request)

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        if self._first_try:
            assert self.server is not None
            job = newest_spec_job(self.server, ref["workspace"], ref["name"])
            type(self).job_status_at_death = None if job is None else job["status"]
            raise RuntimeError("worker died")
        return super().wait(ref, resource)

    def execute(self, context: Any) -> Any:
        self._first_try = context["ti"].try_number == 1
        return super().execute(context)


@pytest.mark.airflow_feature("durable")
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_a_crash_while_waiting_reconnects_to_its_own_entity(run_dag, platform, capfd, deferrable):
    from airflow.sdk import DAG

    server, workspace = platform
    DiesWhileTheSpecJobRuns.server, DiesWhileTheSpecJobRuns.creates = server, 0
    name = f"crashing-{str(deferrable).lower()}"
    with DAG(f"nemo_real_crash_{deferrable}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        DiesWhileTheSpecJobRuns(
            task_id="register",
            conn_id=CONN,
            workspace=workspace,
            name=name,
            fileset="ckpt",
            deferrable=deferrable,
            poll_interval=0.5,
            wait_timeout=300,
            retries=1,
            retry_delay=dt.timedelta(seconds=0),
        )
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "success" and result.try_number("register") == 2
    assert DiesWhileTheSpecJobRuns.job_status_at_death in SPEC_JOB_RUNNING
    assert DiesWhileTheSpecJobRuns.creates == 1  # the retry never reached create (nor its lookup)
    listed = server.http.get(f"/apis/models/v2/workspaces/{workspace}/models").json()
    assert [entity["name"] for entity in listed["data"]] == [name]  # its own, and no second entity
    spec = result.xcom("register")["spec"]
    assert (spec["checkpoint_model_name"], spec["num_layers"], spec["hidden_size"]) == ("LlamaForCausalLM", 2, 64)
    assert "Reconnecting to NeMo model entity" in capfd.readouterr().out


def test_a_retry_finds_its_own_entity_and_another_task_instance_is_refused(platform, monkeypatch, task_context):
    """The next try of the same task instance reuses the entity it created (NVIDIA's answer, with the nulls it
    adds to prompt.inference_params, compares equal to the request); another task instance's same name fails."""
    import json

    from airflow_provider_modelreg.version_compat import AirflowFailException

    server, workspace = platform
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(connection(server)))

    def operator() -> NemoCreateModelOperator:
        return NemoCreateModelOperator(
            task_id="register",
            conn_id=CONN,
            workspace=workspace,
            name="retried-bot",
            fileset="ckpt",
            api_endpoint={"url": "HTTP://NIM.Internal:80/v1", "model_id": "bot"},
            prompt={"inference_params": {"temperature": 0.2}},
            poll_interval=0.5,
            wait_timeout=300,
        )

    first = operator().execute(task_context(run_id="r1"))
    again = operator().execute(task_context(run_id="r1"))
    assert again["id"] == first["id"] and again["spec"]["num_layers"] == 2
    listed = server.http.get(f"/apis/models/v2/workspaces/{workspace}/models", params={"filter[name]": "retried-bot"})
    assert listed.json()["pagination"]["total_results"] == 1
    with pytest.raises(AirflowFailException, match="another task instance created it"):
        operator().execute(task_context(run_id="r2"))
