"""What a create operator's log says about reuse: a first try never claims to reuse an earlier try's resource
(an existing experiment is shared by name, not the task's own); a real retry does (issue 27.2)."""

from __future__ import annotations

import datetime as dt

import pytest
from fixtures.mlflow_runs import FlakyRunOperator

from airflow_provider_modelreg.idempotency import REUSED
from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator
from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS

pytestmark = pytest.mark.integration

CONN = "mlf_logs"


def run_dag_logging_to(run_dag, target, dag_id: str, operator: type[MlflowCreateRunOperator], experiment: str):
    from airflow.sdk import DAG

    retry = {"retries": 1, "retry_delay": dt.timedelta(seconds=0)}
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False, default_args=retry) as dag:
        operator(task_id="log_run", conn_id=CONN, experiment_name=experiment, run_params={"epochs": 3})
    return run_dag(dag, {CONN: target.conn})


def test_a_first_try_logging_to_an_existing_experiment_logs_no_reuse(run_dag, aidp_target, capfd):
    experiment = aidp_target.unique("shared-exp")
    aidp_target.hook().get_or_create_experiment(experiment)  # another DAG's runs made it earlier
    capfd.readouterr()

    result = run_dag_logging_to(run_dag, aidp_target, "first_try_log", MlflowCreateRunOperator, experiment)

    assert result.state == "success" and result.try_number("log_run") == 1
    log = "".join(capfd.readouterr())
    assert f"Experiment {experiment!r} exists; logging to it" in log
    assert "Created MLflow run" in log
    assert REUSED not in log


@pytest.mark.skipif(
    not AIRFLOW_V_3_1_PLUS,
    reason="Airflow 3.0's dag.test() prints each task log line twice (its stdout handler and stderr): counts of log lines do not hold",
)
def test_a_retry_that_finds_its_earlier_tries_run_logs_the_reuse(run_dag, aidp_target, capfd):
    experiment = aidp_target.unique("retried-exp")
    capfd.readouterr()

    result = run_dag_logging_to(run_dag, aidp_target, "retry_log", FlakyRunOperator, experiment)

    assert result.state == "success" and result.try_number("log_run") == 2
    log = "".join(capfd.readouterr())
    # The first try made the experiment and the run; the second finds the experiment (shared by name) and
    # its own run, which only it calls a reuse.
    assert log.count(REUSED) == 1
    assert log.index("injected failure while logging") < log.index(REUSED)
    assert log.count(f"Experiment {experiment!r} exists; logging to it") == 1
    assert len(aidp_target.runs_of(experiment)) == 1
