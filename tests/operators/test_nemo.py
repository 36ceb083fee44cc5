"""NemoCreateModelOperator in real DAGs against the sandbox (and, for exact messages, execute() directly)."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from unittest import mock

import pytest

from airflow_provider_modelreg.operators.nemo import IDEMPOTENCY_FIELD, NemoCreateModelOperator
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.version_compat import AirflowException, AirflowFailException

pytestmark = pytest.mark.integration

CONN = "nemo_test"
EXAMPLE_DAG = Path(__file__).parents[2] / "dags_examples" / "nemo_register_model.py"
# What differs between two entities registered the same way: identity, timestamps, the task's key.
VOLATILE = ("id", "name", "created_at", "updated_at", "custom_fields")


def make_dag(dag_id: str, **op_kwargs):
    from airflow.sdk import DAG

    op_kwargs.setdefault("name", "support-bot")
    op_kwargs.setdefault("fileset", "default/support-bot-ckpt")
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        NemoCreateModelOperator(task_id="register", conn_id=CONN, poll_interval=0.2, **op_kwargs)
    return dag


def operator(**kwargs) -> NemoCreateModelOperator:
    kwargs.setdefault("name", "support-bot")
    kwargs.setdefault("poll_interval", 0.1)
    return NemoCreateModelOperator(task_id="register", conn_id=CONN, **kwargs)


def stable(entity: dict) -> dict:
    return {k: v for k, v in entity.items() if k not in VOLATILE}


# -- waiting for the spec ---------------------------------------------------------------------------
def test_waits_for_the_spec_sync_and_deferred_with_the_same_xcom(run_dag, sandbox, nemo_conn, nemo_sent, trigger_runs):
    sync = run_dag(make_dag("nemo_sync", name="bot-sync"), {CONN: nemo_conn})
    deferred = run_dag(make_dag("nemo_deferred", name="bot-deferred", deferrable=True), {CONN: nemo_conn})

    assert (sync.state, deferred.state) == ("success", "success")
    assert trigger_runs == [{"workspace": "default", "name": "bot-deferred"}]
    sync_entity, deferred_entity = sync.xcom("register"), deferred.xcom("register")
    assert sync_entity["spec"]["checkpoint_model_name"] == "LlamaForCausalLM"  # from the fileset's config.json
    assert stable(sync_entity) == stable(deferred_entity)
    assert (sync_entity["name"], deferred_entity["name"]) == ("bot-sync", "bot-deferred")
    # trust_remote_code was not set, so it went out false
    assert [r["body"]["trust_remote_code"] for r in nemo_sent("POST")] == [False, False]


def test_without_a_fileset_it_returns_at_once(nemo_env, sandbox, task_context):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 3600  # a wait would time out below
    entity = operator(fileset=None, wait_timeout=1).execute(task_context())
    assert entity["spec"] is None and entity["fileset"] is None


def test_a_spec_that_never_comes_times_out_naming_entity_and_workspace(nemo_env, sandbox, task_context):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 120  # the analysis job still runs
    op = operator(name="stuck-model", workspace="team-a", fileset="team-a/ckpt", wait_timeout=1)
    with pytest.raises(AirflowException) as caught:
        op.execute(task_context())
    assert str(caught.value).startswith(
        "NeMo model entity workspace=team-a, name=stuck-model was still AWAITING_SPEC when the wait timed out"
    )


def test_a_deferred_wait_that_times_out_fails_the_task(run_dag, sandbox, nemo_conn):
    sandbox.sandbox.state.lifecycle_seconds["nemo"] = 120
    dag = make_dag("nemo_deferred_timeout", name="stuck-deferred", deferrable=True, wait_timeout=1, retries=0)
    result = run_dag(dag, {CONN: nemo_conn})
    assert result.state == "failed"
    assert result.task_state("register") == "failed"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_a_failed_spec_analysis_job_fails_the_wait_at_once_with_its_message(
    run_dag, sandbox, nemo_conn, capfd, deferrable
):
    """Issue 14 item 3: the job on the jobs API ends error; the entity's spec stays null for ever."""
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="nemo", match="doomed", reason="bad checkpoint"))
    dag = make_dag(f"nemo_job_error_{deferrable}", name="doomed-model", deferrable=deferrable, retries=2)
    dag.task_dict["register"].wait_timeout = 30  # only the job's error can end this wait this soon
    result = run_dag(dag, {CONN: nemo_conn})
    assert result.state == "failed" and result.try_number("register") == 1
    out = capfd.readouterr().out
    assert "name=doomed-model ended SPEC_ANALYSIS_ERROR: spec-analysis job models-system-" in out
    assert "ended error: bad checkpoint" in out


# -- validation before send --------------------------------------------------------------------------
def test_bad_arguments_fail_without_retry_and_send_nothing(run_dag, sandbox, nemo_conn, nemo_sent):
    result = run_dag(make_dag("nemo_invalid", name="not a valid name", retries=2), {CONN: nemo_conn})
    assert result.state == "failed"
    assert result.task_state("register") == "failed"  # not up_for_retry: AirflowFailException
    assert nemo_sent() == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"name": "a/b"}, "name: String should match pattern"),
        ({"description": "d" * 1001}, "description: String should have at most 1000 characters"),
        ({"fileset": "ws/Checkpoint"}, "fileset: String should match pattern"),
        ({"backend_format": "OPENAI"}, "backend_format: Input should be 'OPENAI_CHAT' or 'ANTHROPIC_MESSAGES'"),
        ({"trust_remote_code": "true"}, "trust_remote_code: Input should be a valid boolean"),
        ({"workspace": "team a"}, "workspace: String should match pattern"),
    ],
)
def test_validation_errors_name_field_and_rule(kwargs, expected, task_context):
    # No connection is defined for this test: the failure happens before any is read.
    with pytest.raises(AirflowFailException) as caught:
        operator(**kwargs).execute(task_context())
    assert expected in str(caught.value) and "nothing was sent" in str(caught.value)


# -- trust_remote_code --------------------------------------------------------------------------------
def trust_warnings_while(run) -> list[str]:
    """The operator's warnings about trust_remote_code (its logger is a mock while ``run`` runs)."""
    with mock.patch.object(NemoCreateModelOperator, "log", new_callable=mock.PropertyMock) as log:
        run()
    warnings = [call.args[0] % call.args[1:] for call in log.return_value.warning.call_args_list]
    return [w for w in warnings if "trust_remote_code" in w]


def test_trust_remote_code_is_sent_true_only_when_set_and_then_logged(nemo_env, sandbox, task_context, nemo_sent):
    default = operator(name="default-trust", wait_for_completion=False)
    explicit = operator(
        name="explicit-trust", fileset="default/ckpt", trust_remote_code=True, wait_for_completion=False
    )

    assert trust_warnings_while(lambda: default.execute(task_context(run_id="r1"))) == []
    assert trust_warnings_while(lambda: explicit.execute(task_context(run_id="r2"))) == [
        "trust_remote_code=True was set explicitly: the platform may run custom Python code from fileset "
        "default/ckpt when it loads this model"
    ]
    sent = {r["body"]["name"]: r["body"]["trust_remote_code"] for r in nemo_sent("POST")}
    assert sent == {"default-trust": False, "explicit-trust": True}


# -- idempotency and the 409 paths --------------------------------------------------------------------
def test_a_409_for_the_entity_this_task_created_returns_it(run_dag, sandbox, nemo_conn, nemo_sent):
    faults = sandbox.sandbox.faults.rules
    # The first create succeeds but its answer is lost; the lookups miss it (404), so the retried create
    # meets the platform's 409, and the operator proves by its key that the entity is its own.
    faults.append(FaultRule(kind="drop_after", method="POST", count=1))
    faults.append(FaultRule(kind="status", status=404, method="GET", path="/models/race-bot$", count=2))
    result = run_dag(make_dag("nemo_race", name="race-bot", fileset=None, retries=0), {CONN: nemo_conn})

    assert result.state == "success"
    entity = result.xcom("register")
    assert entity["name"] == "race-bot" and entity["custom_fields"][IDEMPOTENCY_FIELD]
    state = sandbox.sandbox.state
    assert (state.counters["nemo.created"], state.counters["nemo.conflicts"]) == (1, 1)
    assert len(nemo_sent("POST")) == 2


def test_a_fileset_that_does_not_exist_fails_the_task_at_once_with_the_platforms_message(
    run_dag, sandbox, nemo_conn, nemo_sent, capfd
):
    """The platform answers 400 for a missing fileset; no retry would make it exist."""
    result = run_dag(make_dag("nemo_no_fileset", fileset="default/never-uploaded", retries=2), {CONN: nemo_conn})
    assert result.state == "failed" and result.try_number("register") == 1
    assert len(nemo_sent("POST")) == 1
    assert "HTTP 400: Fileset 'default/never-uploaded' not found in workspace 'default'" in capfd.readouterr().out
    assert "nemo" not in sandbox.sandbox.state.resources


def test_a_409_for_a_different_entity_fails_the_task(run_dag, sandbox, nemo_conn, nemo_hook, nemo_sent):
    from airflow_provider_modelreg.models.nemo import CreateModelEntity

    theirs = nemo_hook.create_model("default", CreateModelEntity(name="taken", description="someone else's"))
    sandbox.sandbox.faults.rules.append(
        FaultRule(kind="status", status=404, method="GET", path="/models/taken$", count=1)
    )
    result = run_dag(make_dag("nemo_taken", name="taken", retries=2), {CONN: nemo_conn})

    assert result.state == "failed"
    assert result.task_state("register") == "failed"  # at once, no retry
    assert sandbox.sandbox.state.counters["nemo.conflicts"] == 1
    assert nemo_hook.get_model("default", "taken") == theirs  # untouched


def test_a_rerun_of_the_same_task_instance_reuses_its_entity(nemo_env, sandbox, task_context, nemo_sent):
    first = operator(description="v1", wait_for_completion=False).execute(task_context())
    again = operator(description="v1", wait_for_completion=False).execute(task_context())
    assert again == first
    assert len(nemo_sent("POST")) == 1  # found before creating: no second POST


def test_a_retry_finds_its_entity_after_the_platform_normalised_it(nemo_env, sandbox, task_context, nemo_sent):
    """Issue 14 item 2: the next try of the same task instance reuses the entity, not fails on a false diff."""
    kwargs = {
        "api_endpoint": {"url": "HTTP://NIM.Internal:80/v1", "model_id": "bot"},
        "prompt": {"inference_params": {"max_tokens": "256"}},
        "wait_for_completion": False,
    }
    first = operator(**kwargs).execute(task_context())
    assert first["api_endpoint"]["url"].startswith("http://nim.internal/")  # the platform normalised it
    again = operator(**kwargs).execute(task_context())
    assert again["id"] == first["id"] and len(nemo_sent("POST")) == 1


def test_a_403_for_trust_remote_code_fails_the_task_at_once(run_dag, sandbox, nemo_conn, nemo_sent):
    """Issue 14 item 4: a non-admin asking for trust_remote_code gets 403; no retry would change that."""
    sandbox.sandbox.state.nemo_tokens = {"user-token"}
    dag = make_dag("nemo_trc_403", trust_remote_code=True, retries=2, wait_for_completion=False)
    result = run_dag(dag, {CONN: nemo_conn | {"password": "user-token"}})
    assert result.state == "failed" and result.try_number("register") == 1
    assert len(nemo_sent("POST")) == 1


@pytest.mark.parametrize(
    ("run_id", "changes", "expected"),
    [
        (
            "manual__1",
            {"description": "v2", "fileset": "default/other"},
            "differs from this task's request in: description, fileset; "
            "an earlier try of this task instance created it with other arguments",
        ),
        (
            "manual__2",
            {},
            f"differs from this task's request in: custom_fields.{IDEMPOTENCY_FIELD}; another task instance "
            f"created it ({IDEMPOTENCY_FIELD} ",
        ),
    ],
    ids=["same-task-other-arguments", "other-run-same-arguments"],
)
def test_an_existing_entity_that_differs_fails_naming_the_fields(
    nemo_env, sandbox, task_context, run_id, changes, expected
):
    operator(description="v1", wait_for_completion=False).execute(task_context(run_id="manual__1"))
    with pytest.raises(AirflowFailException) as caught:
        operator(**({"description": "v1", "wait_for_completion": False} | changes)).execute(task_context(run_id=run_id))
    message = str(caught.value)
    assert message.startswith("NeMo model entity workspace=default, name=support-bot already exists and ")
    assert expected in message


def test_an_entity_made_outside_airflow_is_never_adopted(nemo_env, nemo_hook, task_context):
    from airflow_provider_modelreg.models.nemo import CreateModelEntity

    nemo_hook.create_model("default", CreateModelEntity(name="support-bot"))
    with pytest.raises(AirflowFailException, match=f"it was not created by this provider \\(no {IDEMPOTENCY_FIELD}"):
        operator(wait_for_completion=False).execute(task_context())


# -- errors from the platform -------------------------------------------------------------------------
def test_a_422_from_the_platform_fails_the_task_with_the_field_path(nemo_env, sandbox, task_context, nemo_sent):
    op = operator(prompt={"system_prompt": "Be brief.", "inference_params": {"temperature": "hot"}})
    with pytest.raises(AirflowFailException) as caught:
        op.execute(task_context())
    message = str(caught.value)
    assert "HTTP 422 ValidationError" in message
    assert "prompt.inference_params.temperature: Input should be a valid number" in message
    assert len(nemo_sent("POST")) == 1


def test_the_inference_endpoint_api_key_is_sent_but_never_returned(nemo_env, sandbox, task_context, nemo_sent):
    endpoint = {"url": "http://nim.internal:8000/v1", "model_id": "bot", "api_key": "nvapi-secret-123"}
    entity = operator(api_endpoint=endpoint, wait_for_completion=False).execute(task_context())
    assert nemo_sent("POST")[0]["body"]["api_endpoint"]["api_key"] == "nvapi-secret-123"
    assert entity["api_endpoint"]["api_key"] == "***"
    assert "nvapi-secret-123" not in str(entity)


# -- the example DAG ----------------------------------------------------------------------------------
def test_the_example_dag_registers_a_model_and_waits_deferred(run_dag, sandbox, nemo_conn, nemo_sent, trigger_runs):
    spec = importlib.util.spec_from_file_location("nemo_register_model_example", EXAMPLE_DAG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    task = dag.get_task("register_model")
    assert task.deferrable and task.trust_remote_code is False
    task.poll_interval = 0.2  # the example polls every 30 s; the sandbox's spec comes after 1 s

    result = run_dag(dag, {"nemo_default": nemo_conn})

    assert result.state == "success"
    assert len(trigger_runs) == 1
    entity = result.xcom("register_model")
    assert entity["name"].startswith("support-bot-sft-")
    assert entity["spec"] is not None and entity["finetuning_type"] == "all_weights"
    body = nemo_sent("POST")[0]["body"]
    assert body["trust_remote_code"] is False and body["fileset"] == "default/support-bot-sft-checkpoint"


def test_a_project_that_does_not_exist_fails_at_once_with_the_platforms_message(run_dag, sandbox, nemo_conn, capfd):
    """The platform refuses a model naming a project its workspace does not have (nemo-platform 0.6.0: 422):
    no retry, nothing created; the message says to create the project."""
    result = run_dag(make_dag("nemo_ghost_project", name="ghostly", project="ghost", retries=2), {CONN: nemo_conn})
    assert result.state == "failed" and result.try_number("register") == 1
    out = capfd.readouterr().out
    assert "Project 'ghost' does not exist in workspace 'default'. Please create the project first." in out
    assert sandbox.sandbox.state.get("nemo", "default/ghostly") is None
