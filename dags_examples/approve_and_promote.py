"""Weekly: a person approves before a model version is promoted.

The champion/challenger gate decides (``promote=False``) whether the newest READY version of
``defect-detector`` (registered by ``mlflow_log_and_register``) beats the version holding ``champion``;
only then does Airflow ask a person (``ApprovalOperator``, the standard provider's human-in-the-loop
operator: the request appears under Required Actions in the UI and in the HITL REST API), and only an
"Approve" sets the alias. "Reject", or no answer within ``response_timeout`` (its default is Reject),
skips the promotion. ``./dev demo`` and the tests answer through the REST API (scripts/hitl_responder.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_modelreg.operators.mlflow import MlflowChampionChallengerOperator, MlflowSetAliasOperator
from airflow_provider_modelreg.version_compat import hitl_approval_operator, hitl_response_timeout

# Human-in-the-loop approval came with Airflow 3.1: before it the DAG is not defined (the log says so once),
# since promoting without a person's answer is not what it is for.
ApprovalOperator = hitl_approval_operator()

if ApprovalOperator is not None:
    with DAG(
        dag_id="approve_and_promote",
        schedule="@weekly",
        start_date=dt.datetime(2026, 1, 1),
        catchup=False,
        render_template_as_native_obj=True,
        default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=1)},
        params={
            "conn_id": Param("mlflow_default", enum=["mlflow_default", "oci_aidp_default"]),
            "model_name": Param("defect-detector", type="string", minLength=1, maxLength=255),
        },
        tags=["modelreg", "mlflow", "approval"],
    ) as dag:

        @task.short_circuit
        def newest_version(params: dict[str, Any]) -> dict[str, Any] | None:
            from airflow_provider_modelreg.hooks.mlflow import mlflow_hook, quote_filter_value

            found = mlflow_hook(params["conn_id"]).search_model_versions(
                f"name={quote_filter_value(params['model_name'])}"
            )
            ready = [v for v in found if v.get("status") == "READY"]
            if not ready:
                print(f"no READY version of {params['model_name']!r} to evaluate")
                return None
            return {"version": str(max(ready, key=lambda v: int(v["version"]))["version"])}

        # [START howto_operator_mlflow_gate_decide_only]
        evaluate = MlflowChampionChallengerOperator(
            task_id="evaluate",
            conn_id="{{ params.conn_id }}",
            name="{{ params.model_name }}",
            version="{{ ti.xcom_pull(task_ids='newest_version')['version'] }}",
            metrics={"precision": "max", "recall": "max"},
            alias="champion",
            promote=False,  # decide only: a person has the last word
        )
        # [END howto_operator_mlflow_gate_decide_only]

        @task.short_circuit
        def better(decision: dict[str, Any]) -> bool:
            print(f"gate: {'promote' if decision['promote'] else 'keep'} ({decision['reason']})")
            return bool(decision["promote"])

        approve = ApprovalOperator(
            task_id="approve_promotion",
            subject="Promote {{ params.model_name }} version {{ ti.xcom_pull(task_ids='evaluate')['version'] }}?",
            body="{{ ti.xcom_pull(task_ids='evaluate')['reason'] }}",
            defaults="Reject",  # taken when nobody answers in time
            **hitl_response_timeout(ApprovalOperator, dt.timedelta(days=2)),
        )

        # [START howto_operator_mlflow_set_alias]
        promote = MlflowSetAliasOperator(
            task_id="set_champion",
            conn_id="{{ params.conn_id }}",
            name="{{ params.model_name }}",
            alias="champion",
            version="{{ ti.xcom_pull(task_ids='evaluate')['version'] }}",
        )
        # [END howto_operator_mlflow_set_alias]

        newest_version() >> evaluate >> better(evaluate.output) >> approve >> promote
