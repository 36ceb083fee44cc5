"""NemoCreateModelOperator and NemoModelSpecSensor in real DAGs (``dag.test``, deferred and not) against NVIDIA's
real NeMo Platform server, whose spec-analysis job runs NVIDIA's own task on a tiny checkpoint
(tests/fixtures/nemo_server.py): the spec they return is the one NVIDIA's code derived."""

from __future__ import annotations

import datetime as dt

import pytest
from fixtures.nemo_server import NemoServer
from fixtures.waiting import wait_until

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


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_after_a_patch_the_sensor_returns_the_new_filesets_spec(run_dag, platform, deferrable):
    """The real server answers the old fileset's spec while the new job runs; the sensor waits for the new one."""
    from airflow.sdk import DAG

    server, workspace = platform
    name = f"moving-{str(deferrable).lower()}"
    created = server.http.post(f"/apis/models/v2/workspaces/{workspace}/models", json={"name": name, "fileset": "ckpt"})
    assert created.status_code == 201, created.text
    path = f"/apis/models/v2/workspaces/{workspace}/models/{name}"
    wait_until(lambda: server.http.get(path).json()["spec"], lambda spec: spec is not None, 300, "the first spec")
    assert server.http.patch(path, json={"fileset": "deeper"}).json()["spec"]["num_layers"] == 2

    with DAG(f"nemo_real_sensor_{deferrable}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        NemoModelSpecSensor(
            task_id="wait", conn_id=CONN, name=name, workspace=workspace, deferrable=deferrable, poke_interval=0.5
        )
    result = run_dag(dag, {CONN: connection(server)})
    assert result.state == "success"
    assert result.xcom("wait")["spec"]["num_layers"] == 3


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
