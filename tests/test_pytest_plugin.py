"""The provider's pytest plugin, as a user's own test suite meets it: installed by entry point, one fixture."""

from __future__ import annotations

import textwrap

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.airflow_feature("pytest plugin")]

USER_TEST = textwrap.dedent(
    """
    # [START testing_user_dag]
    import datetime as dt
    import json
    import os

    import pytest
    from airflow.sdk import DAG

    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator


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
                deferrable=True,  # and the production poll interval (30 s): the fixture paces it
            )
        return dag


    def nemo_dag(dag_id):
        with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False) as dag:
            NemoCreateModelOperator(
                task_id="register", name="support-bot", fileset="default/support-bot-ckpt", deferrable=False
            )
        return dag
    # [END testing_user_dag]


    # [START testing_user_tests]
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
    # [END testing_user_tests]


    def test_the_sandbox_is_fresh_for_every_test(modelreg_sandbox):
        assert modelreg_sandbox.resources("happyrobot") == []
        assert modelreg_sandbox.sandbox.faults.rules == []


    # [START testing_filesets]
    @pytest.mark.modelreg_sandbox(filesets=["default/support-bot-ckpt"])
    def test_a_fileset_named_by_the_marker_is_there_first(modelreg_sandbox):
        assert str(modelreg_sandbox.run_dag(nemo_dag("user_nemo")).state) == "success"
        assert [m["name"] for m in modelreg_sandbox.resources("nemo")] == ["support-bot"]


    def test_without_the_fileset_the_platform_refuses_the_model(modelreg_sandbox):
        assert str(modelreg_sandbox.run_dag(nemo_dag("user_nemo_missing")).state) == "failed"
        modelreg_sandbox.fileset("default/support-bot-ckpt", description="uploaded by the test")
        assert str(modelreg_sandbox.run_dag(nemo_dag("user_nemo_uploaded")).state) == "success"
    # [END testing_filesets]
    """
)


def test_a_users_dag_test_runs_on_the_sandbox_through_the_installed_plugin(pytester, monkeypatch):
    """The user's test file names no conftest and no plugin: the entry point brings the fixture. Their
    AIRFLOW_HOME is fresh (no `airflow db migrate` run): the fixture migrates its SQLite DB."""
    home = pytester.path / "airflow-home"
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    pytester.makepyfile(test_user_dag=USER_TEST)
    # A subprocess, so the plugin is found the way a user's pytest finds it (entry points), not via ours.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=6)
    assert (home / "airflow.db").is_file()


def test_a_metadata_db_it_may_not_migrate_stops_the_fixture_with_what_to_run(monkeypatch):
    """A server DB (not SQLite) that is not migrated: one line naming the command, nothing migrated."""
    from airflow import settings

    from airflow_provider_modelreg import pytest_plugin

    monkeypatch.setattr(settings, "SQL_ALCHEMY_CONN", "postgresql+psycopg2://airflow@db.example/airflow")
    monkeypatch.setattr(pytest_plugin, "_unapplied_migrations", lambda: True)
    monkeypatch.setenv("AIRFLOW_HOME", "/srv/airflow")
    with pytest.raises(pytest_plugin.MetadataDBNotReady) as raised:
        pytest_plugin.prepare_metadata_db()
    assert str(raised.value) == (
        "Airflow's metadata DB (postgresql+psycopg2) is not migrated: run "
        "`AIRFLOW_HOME=/srv/airflow airflow db migrate` before the tests"
    )


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
