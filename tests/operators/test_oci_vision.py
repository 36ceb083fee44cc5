"""OCIVisionCreateModelOperator, run in real DAGs against the sandbox (OCI-signed)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fixtures.oci_vision import VISION_COMPARTMENT, VISION_PROJECT, vision_arguments

from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.links.oci_vision import OCIVisionModelLink
from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS

pytestmark = pytest.mark.integration

# Airflow 3.0's dag.test() does not print a failed task's exception (3.1 and later do): there the reason is
# asserted from what the task itself logged.
FAILURE_PRINTED = AIRFLOW_V_3_1_PLUS

EXAMPLE_DAG = Path(__file__).parents[2] / "dags_examples" / "oci_vision_train.py"
METRICS = ("precision", "recall", "averagePrecision", "confidenceThreshold", "testImageCount", "totalImageCount")


def make_dag(dag_id: str, retries: int = 0, **overrides: Any):
    from airflow.sdk import DAG

    kwargs = vision_arguments(poll_interval=0.2, conn_id="oci_vision") | overrides
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
        OCIVisionCreateModelOperator(task_id="train", retries=retries, retry_delay=dt.timedelta(seconds=0), **kwargs)
    return dag


def comparable(model: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model.items() if k not in {"id", "timeCreated", "timeUpdated"}}


def console_link(result: Any, task_id: str) -> str:
    """The link Airflow stored for the UI (written raw, not as JSON, so read without the JSON decoding)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == result.dag_id,
                XComModel.run_id == result.run_id,
                XComModel.task_id == task_id,
                XComModel.key == OCIVisionModelLink().xcom_key,
            )
        ).first()
    return value


def pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def test_trains_a_model_waits_deferred_and_returns_its_metrics_and_a_console_link(run_dag, sandbox, oci_vision_conn):
    result = run_dag(make_dag("oci_vision_deferred", deferrable=True), {"oci_vision": oci_vision_conn})
    assert result.state == "success"
    model = result.xcom("train")
    assert model["lifecycleState"] == "ACTIVE"
    assert all(metric in model for metric in METRICS), model
    assert model["trainedDurationInHours"] > 0 and isinstance(model["metrics"], str)
    (stored,) = sandbox.sandbox.state.all("oci_vision")
    assert model["id"] == stored["id"]
    assert result.xcom("train", key=OCIVisionModelLink.key)["model_id"] == model["id"]
    link = console_link(result, "train")
    assert link == f"https://cloud.oracle.com/vision/models/{model['id']}?region=us-ashburn-1"


def test_deferred_and_sync_waits_give_the_same_result(run_dag, sandbox, oci_vision_conn):
    deferred = run_dag(make_dag("oci_vision_same_deferred", deferrable=True), {"oci_vision": oci_vision_conn})
    sync = run_dag(make_dag("oci_vision_same_sync", deferrable=False), {"oci_vision": oci_vision_conn})
    assert deferred.state == sync.state == "success"
    assert comparable(deferred.xcom("train")) == comparable(sync.xcom("train"))
    assert deferred.xcom("train")["lifecycleState"] == "ACTIVE"


def test_without_waiting_returns_the_new_model_at_once(run_dag, sandbox, oci_vision_conn):
    result = run_dag(make_dag("oci_vision_nowait", wait_for_completion=False), {"oci_vision": oci_vision_conn})
    assert result.state == "success"
    assert result.xcom("train")["lifecycleState"] == "CREATING"


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"model_type": "FACE_DETECTION"}, "model_type", "'IMAGE_CLASSIFICATION' or 'OBJECT_DETECTION'"),
        ({"max_training_duration_in_hours": 0}, "max_training_duration_in_hours", "greater than 0"),
        ({"training_dataset": {"dataset_type": "OBJECT_STORAGE"}}, "training_dataset.OBJECT_STORAGE.bucket_name", ""),
    ],
)
def test_bad_input_fails_before_any_request(run_dag, sandbox, oci_vision_conn, capfd, overrides, field, rule):
    result = run_dag(
        make_dag(f"oci_vision_invalid_{field[:20]}", retries=2, **overrides), {"oci_vision": oci_vision_conn}
    )
    assert result.state == "failed"
    assert result.try_number("train") == 1  # bad input is not retried
    out = capfd.readouterr().out
    assert f"{field}: " in out and rule in out
    assert sandbox.sandbox.state.counters == {}  # nothing reached the service
    assert sandbox.sandbox.faults.injected == {}


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "sync"])
def test_failed_training_fails_the_task_with_the_reason_and_work_request_errors(
    run_dag, sandbox, oci_vision_conn, capfd, deferrable
):
    sandbox.sandbox.state.outcome_rules.append(
        OutcomeRule(service="oci_vision", match="doomed", reason="the dataset has fewer than 10 images per label")
    )
    dag = make_dag(f"oci_vision_failed_{deferrable}", retries=2, display_name="doomed-model", deferrable=deferrable)
    result = run_dag(dag, {"oci_vision": oci_vision_conn})
    assert result.state == "failed"
    assert result.try_number("train") == 1  # a terminal state is final: no retry
    out = capfd.readouterr().out
    assert "ended FAILED: the dataset has fewer than 10 images per label" in out
    if FAILURE_PRINTED:
        assert "work request errors: ModelTrainingFailed: Training of model ocid1.aivisionmodel." in out


def test_a_retried_task_gets_the_first_model_back(run_dag, sandbox, oci_vision_conn):
    # Try 1 creates the model, then dies on its first status read (a 400 is not retried in-task).
    sandbox.sandbox.faults.rules.append(
        FaultRule(kind="status", status=400, method="GET", path="/20220125/models/", count=1)
    )
    result = run_dag(make_dag("oci_vision_retry", retries=1), {"oci_vision": oci_vision_conn})
    assert result.state == "success"
    assert result.try_number("train") == 2
    (stored,) = sandbox.sandbox.state.all("oci_vision")
    assert result.xcom("train")["id"] == stored["id"]
    # Try 2 reconnected to the model try 1 recorded (task_state): it sent no create, so no token replay.
    assert "oci_vision.retry_token_replays" not in sandbox.sandbox.state.counters
    # Airflow clears a task's XComs before each try (apache/airflow#71211): the reconnecting try writes the
    # console link again, so the UI still shows it.
    assert console_link(result, "train") == f"https://cloud.oracle.com/vision/models/{stored['id']}?region=us-ashburn-1"


def test_a_create_whose_answer_is_lost_is_resent_and_makes_one_model(run_dag, sandbox, oci_vision_conn):
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop_after", method="POST", path="/20220125/models", count=1))
    result = run_dag(make_dag("oci_vision_drop_after"), {"oci_vision": oci_vision_conn})
    assert result.state == "success"
    assert sandbox.sandbox.faults.injected == {"drop_after": 1}
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1


def test_a_token_already_used_with_another_body_fails_at_once_and_says_why(
    run_dag, sandbox, oci_vision_conn, oci_vision_hook, capfd, monkeypatch
):
    import airflow_provider_modelreg.operators.oci_vision as module
    from airflow_provider_modelreg.models.base import validate_request
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    # As if an earlier run of this task instance had sent another body within 24 h.
    monkeypatch.setattr(module, "idempotency_key", lambda context: "same-task-instance")
    earlier = validate_request(CreateModelDetails, vision_arguments(display_name="earlier"))
    oci_vision_hook.create_model(earlier, retry_token="same-task-instance")
    result = run_dag(make_dag("oci_vision_invalidated_token", retries=2), {"oci_vision": oci_vision_conn})
    assert result.state == "failed"
    assert result.try_number("train") == 1
    out = capfd.readouterr().out
    if FAILURE_PRINTED:
        assert "HTTP 409 InvalidatedRetryToken" in out and "start a new DAG run" in out
    assert len(sandbox.sandbox.state.all("oci_vision")) == 1


def test_no_private_key_or_passphrase_in_logs_xcom_or_trigger_kwargs(
    run_dag, sandbox, oci_vision_conn, oci_private_key, capfd, monkeypatch
):
    passphrase = "correct-horse-battery-staple-7"
    encrypted = oci_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()
    fields = json.loads(oci_vision_conn["extra"]) | {"private_key": encrypted, "passphrase": passphrase}
    conn = oci_vision_conn | {"extra": json.dumps(fields)}
    serialized: list[Any] = []
    original = LifecycleTrigger.serialize
    monkeypatch.setattr(LifecycleTrigger, "serialize", lambda self: serialized.append(original(self)) or serialized[-1])

    result = run_dag(make_dag("oci_vision_secrets", deferrable=True), {"oci_vision": conn})
    assert result.state == "success"
    assert serialized, "the task did not defer"
    captured = capfd.readouterr()
    xcoms = [result.xcom("train"), result.xcom("train", key=OCIVisionModelLink.key), console_link(result, "train")]
    places = {"logs": captured.out + captured.err, "xcom": json.dumps(xcoms), "trigger": json.dumps(serialized)}
    secrets = [passphrase, *pem_body_lines(encrypted), *pem_body_lines(fields["private_key"])]
    for where, text in places.items():
        assert not [s for s in secrets if s in text], where
    assert "ocid1.aivisionmodel." in places["trigger"]  # the kwargs were captured: the check can fail


def test_a_bad_passphrase_fails_the_task_without_revealing_it(
    run_dag, sandbox, oci_vision_conn, oci_private_key, capfd
):
    encrypted = oci_private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"the-right-one-123"),
    ).decode()
    fields = json.loads(oci_vision_conn["extra"]) | {"private_key": encrypted, "passphrase": "the-wrong-one-456"}
    result = run_dag(make_dag("oci_vision_bad_pass"), {"oci_vision": oci_vision_conn | {"extra": json.dumps(fields)}})
    assert result.state == "failed"
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "wrong passphrase or not a PEM RSA key" in text
    assert "the-wrong-one-456" not in text and "the-right-one-123" not in text
    assert not [line for line in pem_body_lines(encrypted) if line in text]
    assert sandbox.sandbox.state.all("oci_vision") == []


def test_the_example_dag_trains_a_model_in_the_sandbox(run_dag, sandbox, oci_vision_conn):
    spec = importlib.util.spec_from_file_location("oci_vision_train_example", EXAMPLE_DAG)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.dag
    train = dag.get_task("train_model")
    assert train.deferrable is True
    # The example polls every 30 s; the sandbox trains in a second.
    train.poll_interval = 0.2
    dag.get_task("confirm_active").poke_interval = 0.2
    result = run_dag(dag, {"oci_default": oci_vision_conn})
    assert result.state == "success", result.task_states()
    (stored,) = sandbox.sandbox.state.all("oci_vision")
    assert stored["compartmentId"] == VISION_COMPARTMENT and stored["projectId"] == VISION_PROJECT
    assert result.xcom("train_model")["lifecycleState"] == "ACTIVE"
    assert result.xcom("confirm_active")["id"] == stored["id"]
    assert result.xcom("report")["precision"] == result.xcom("train_model")["precision"]
