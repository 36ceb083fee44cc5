"""Alias operators and the champion/challenger gate in real DAGs, against a real ``mlflow server`` and the
sandbox's OCI AI Data Platform flavour (``mlflow_target``); where aliases point is read back from the server."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_modelreg.hooks.mlflow import get_aliases
from airflow_provider_modelreg.models.mlflow import (
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
    LogBatchRequest,
    Metric,
)
from airflow_provider_modelreg.operators.mlflow import (
    MlflowChampionChallengerOperator,
    MlflowDeleteAliasOperator,
    MlflowSetAliasOperator,
)

pytestmark = pytest.mark.integration

CONN = "mlf"


def one_task_dag(dag_id: str, operator):
    from airflow.sdk import DAG

    with DAG(
        dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), catchup=False, default_args={"retries": 0}
    ) as dag:
        operator()
    return dag


def version_with_metrics(hook, model: str, experiment: str, **metrics: float) -> str:
    """A READY version of ``model`` made from a run that logged ``metrics``."""
    experiment_id = hook.get_or_create_experiment(experiment)["experiment_id"]
    run_id = hook.create_run(CreateRunRequest(experiment_id=experiment_id, run_name="r"))["info"]["run_id"]
    hook.log_batch(
        LogBatchRequest(run_id=run_id, metrics=[Metric(key=k, value=v, timestamp=1) for k, v in metrics.items()])
    )
    hook.set_run_status(run_id, "FINISHED")
    hook.ensure_registered_model(CreateRegisteredModelRequest(name=model))
    version = hook.create_model_version(
        CreateModelVersionRequest(name=model, source=f"runs:/{run_id}/model", run_id=run_id)
    )
    return str(version["version"])


def test_set_moves_an_alias_and_delete_removes_it(run_dag, mlflow_target):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    exp = mlflow_target.unique("exp")
    v1, v2 = version_with_metrics(hook, model, exp, f1=0.5), version_with_metrics(hook, model, exp, f1=0.6)

    def setter(version: str):
        return lambda: MlflowSetAliasOperator(
            task_id="set", conn_id=CONN, name=model, alias="champion", version=version
        )

    first = run_dag(one_task_dag("alias_set_1", setter(v1)), {CONN: mlflow_target.conn})
    assert first.state == "success" and first.xcom("set")["previous"] is None
    assert get_aliases(hook, model) == {"champion": v1}
    moved = run_dag(one_task_dag("alias_set_2", setter(v2)), {CONN: mlflow_target.conn})
    assert moved.xcom("set") == {"name": model, "alias": "champion", "version": v2, "previous": v1}
    assert get_aliases(hook, model) == {"champion": v2}
    again = run_dag(one_task_dag("alias_set_3", setter(v2)), {CONN: mlflow_target.conn})
    assert again.state == "success" and again.xcom("set")["previous"] == v2  # idempotent

    def deleter():
        # [START howto_operator_mlflow_delete_alias]
        return MlflowDeleteAliasOperator(task_id="delete", conn_id=CONN, name=model, alias="champion")
        # [END howto_operator_mlflow_delete_alias]

    gone = run_dag(one_task_dag("alias_delete_1", deleter), {CONN: mlflow_target.conn})
    assert gone.xcom("delete") == {"name": model, "alias": "champion", "deleted": True, "previous": v2}
    assert get_aliases(hook, model) == {}
    twice = run_dag(one_task_dag("alias_delete_2", deleter), {CONN: mlflow_target.conn})
    assert twice.state == "success" and twice.xcom("delete")["deleted"] is False


@pytest.mark.parametrize("alias", ["latest", "v3", "bad alias", ""])
def test_a_bad_or_reserved_alias_fails_before_anything_is_sent(run_dag, mlflow_target, alias):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    version = version_with_metrics(hook, model, mlflow_target.unique("exp"), f1=0.5)

    def build():
        return MlflowSetAliasOperator(task_id="set", conn_id=CONN, name=model, alias=alias, version=version)

    result = run_dag(one_task_dag("alias_bad", build), {CONN: mlflow_target.conn})
    assert result.task_state("set") == "failed" and result.try_number("set") == 1
    assert get_aliases(hook, model) == {}


def gate(model: str, version: str, **kwargs):
    return lambda: MlflowChampionChallengerOperator(
        task_id="gate",
        conn_id=CONN,
        name=model,
        version=version,
        metrics={"f1": "max", "latency_ms": "min"},
        **kwargs,
    )


def test_the_gate_promotes_when_no_version_holds_the_alias(run_dag, mlflow_target, capfd):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    v1 = version_with_metrics(hook, model, mlflow_target.unique("exp"), f1=0.8, latency_ms=40)
    result = run_dag(one_task_dag("gate_first", gate(model, v1)), {CONN: mlflow_target.conn})
    decision = result.xcom("gate")
    assert decision["promote"] is True and decision["promoted"] is True and decision["champion_version"] is None
    assert result.xcom("gate", key="decision") == decision
    assert get_aliases(hook, model) == {"champion": v1}
    assert "no version holds the alias yet" in capfd.readouterr().out


def test_the_gate_promotes_a_better_version_and_keeps_a_worse_one(run_dag, mlflow_target, capfd):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    exp = mlflow_target.unique("exp")
    v1 = version_with_metrics(hook, model, exp, f1=0.8, latency_ms=40)
    v2 = version_with_metrics(hook, model, exp, f1=0.85, latency_ms=35)
    v3 = version_with_metrics(hook, model, exp, f1=0.9, latency_ms=50)
    run_dag(one_task_dag("gate_1", gate(model, v1)), {CONN: mlflow_target.conn})

    better = run_dag(one_task_dag("gate_2", gate(model, v2)), {CONN: mlflow_target.conn}).xcom("gate")
    assert (better["promote"], better["champion_version"]) == (True, v1)
    assert better["candidate"] == {"f1": 0.85, "latency_ms": 35.0} and better["champion"]["f1"] == 0.8
    assert get_aliases(hook, model) == {"champion": v2}

    worse = run_dag(one_task_dag("gate_3", gate(model, v3)), {CONN: mlflow_target.conn}).xcom("gate")
    assert worse["promote"] is False and worse["promoted"] is False
    assert "latency_ms 35 -> 50 (lower is better)" in worse["reason"]
    assert get_aliases(hook, model) == {"champion": v2}
    out = capfd.readouterr().out
    assert f"keep version {v3} over version {v2}" in out and "latency_ms 35 -> 50" in out


def test_a_gain_below_the_minimum_improvement_does_not_promote(run_dag, mlflow_target):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    exp = mlflow_target.unique("exp")
    v1 = version_with_metrics(hook, model, exp, f1=0.80, latency_ms=40)
    v2 = version_with_metrics(hook, model, exp, f1=0.81, latency_ms=40)
    run_dag(one_task_dag("gate_min_1", gate(model, v1)), {CONN: mlflow_target.conn})
    small = gate(model, v2, min_improvement={"f1": 0.05})
    decision = run_dag(one_task_dag("gate_min_2", small), {CONN: mlflow_target.conn}).xcom("gate")
    assert decision["promote"] is False and "needs an improvement of at least 0.05" in decision["reason"]
    assert get_aliases(hook, model) == {"champion": v1}


def test_promote_false_only_decides(run_dag, mlflow_target):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    v1 = version_with_metrics(hook, model, mlflow_target.unique("exp"), f1=0.8, latency_ms=40)
    decision = run_dag(one_task_dag("gate_dry", gate(model, v1, promote=False)), {CONN: mlflow_target.conn})
    assert decision.xcom("gate")["promote"] is True and decision.xcom("gate")["promoted"] is False
    assert get_aliases(hook, model) == {}


def test_a_candidate_without_a_named_metric_fails_naming_it(run_dag, mlflow_target, capfd):
    hook, model = mlflow_target.hook(), mlflow_target.unique("model")
    v1 = version_with_metrics(hook, model, mlflow_target.unique("exp"), f1=0.8)
    result = run_dag(one_task_dag("gate_missing", gate(model, v1)), {CONN: mlflow_target.conn})
    assert result.task_state("gate") == "failed"
    assert "has no metric 'latency_ms'" in capfd.readouterr().out
    assert get_aliases(hook, model) == {}
