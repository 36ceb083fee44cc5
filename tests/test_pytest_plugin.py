"""The provider's pytest plugin, as a user's own test suite meets it: installed by entry point, one fixture."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow_feature("pytest plugin")]

USER_TEST = textwrap.dedent(
    """
    import datetime as dt
    import json
    import os

    import pytest
    from airflow.sdk import DAG

    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator


    def retraining_dag(dag_id):
        # A user's DAG, written for production: default connection ids, nothing sandbox-specific.
        with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
            HappyRobotCreateModelOperator(
                task_id="train",
                use_case_id="uc-1",
                name="support-bot",
                from_model_id="a" * 24,
                train_sample_ids=["s1"],
                test_sample_ids=["t1"],
                poll_interval=0.2,
                deferrable=True,
            )
        return dag


    def test_my_dag_trains_one_model(modelreg_sandbox):
        assert json.loads(os.environ["AIRFLOW_CONN_HAPPYROBOT_DEFAULT"])["host"].startswith(modelreg_sandbox.url)
        assert str(modelreg_sandbox.run_dag(retraining_dag("user_ok")).state) == "success"
        assert [m["status"] for m in modelreg_sandbox.resources("happyrobot")] == ["active"]


    @pytest.mark.modelreg_sandbox(fail={"happyrobot": "support"}, lifecycle_seconds=0.3)
    def test_a_failed_training_fails_my_dag(modelreg_sandbox):
        assert str(modelreg_sandbox.run_dag(retraining_dag("user_failed")).state) == "failed"


    def test_faults_come_and_go_per_test(modelreg_sandbox):
        modelreg_sandbox.fault("status:503@POST~/modelsx2")
        assert str(modelreg_sandbox.run_dag(retraining_dag("user_fault")).state) == "success"
        assert modelreg_sandbox.faults_injected == {"status_503": 2}


    def test_the_sandbox_is_fresh_for_every_test(modelreg_sandbox):
        assert modelreg_sandbox.resources("happyrobot") == []
        assert modelreg_sandbox.sandbox.faults.rules == []
    """
)


def test_a_users_dag_test_runs_on_the_sandbox_through_the_installed_plugin(pytester, airflow_db, monkeypatch):
    """The user's test file names no conftest and no plugin: the entry point brings the fixture."""
    from airflow.configuration import conf

    # The user's suite runs on a migrated metadata DB: this session's, named explicitly for the child.
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", conf.get("database", "sql_alchemy_conn"))
    pytester.makepyfile(test_user_dag=USER_TEST)
    # A subprocess, so the plugin is found the way a user's pytest finds it (entry points), not via ours.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)


def test_the_plugin_imports_nothing_heavy():
    """It is loaded by every pytest run in an environment that has the provider."""
    import subprocess
    import sys

    code = (
        "import sys, airflow_provider_modelreg.pytest_plugin\n"
        "heavy = [m for m in ('airflow', 'fastapi', 'uvicorn', 'httpx', 'airflow_provider_modelreg.sandbox')"
        " if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
