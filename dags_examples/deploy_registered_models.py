"""Runs whenever a retraining pipeline registers a new model version (asset-scheduled): it reports what was
registered, then evaluates the newest READY version of ``vision-defect-detector`` against the version
holding the ``champion`` alias (precision and recall, higher is better) and promotes it only if it is
better. With no registered version yet, the evaluation is skipped."""

from __future__ import annotations

import datetime as dt
from typing import Any

from _assets import ALL_MODELS
from airflow.sdk import DAG, AssetAny, task

from airflow_provider_modelreg.operators.mlflow import MlflowChampionChallengerOperator

VISION_REGISTRY = "vision-defect-detector"

with DAG(
    dag_id="deploy_registered_models",
    schedule=AssetAny(*ALL_MODELS),  # any newly registered model
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    tags=["modelreg", "deployment"],
) as dag:

    @task
    def deploy(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        deployed = []
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                deployed.append({"asset": str(getattr(asset, "name", asset)), "extra": dict(event.extra or {})})
        print(f"deploying {len(deployed)} newly registered model version(s): {deployed}")
        return deployed

    @task.short_circuit
    def newest_vision_version() -> dict[str, Any] | None:
        from airflow_provider_modelreg.hooks.mlflow import mlflow_hook, quote_filter_value

        hook = mlflow_hook("oci_aidp_default")
        found = hook.search_model_versions(f"name={quote_filter_value(VISION_REGISTRY)}")
        ready = [v for v in found if v.get("status") == "READY"]
        if not ready:
            print(f"no READY version of {VISION_REGISTRY!r} to evaluate")
            return None
        newest = max(ready, key=lambda v: int(v["version"]))
        return {"name": newest["name"], "version": str(newest["version"])}

    # [START howto_operator_mlflow_champion_challenger]
    promote = MlflowChampionChallengerOperator(
        task_id="evaluate_and_promote",
        conn_id="oci_aidp_default",
        name=VISION_REGISTRY,
        version="{{ ti.xcom_pull(task_ids='newest_vision_version')['version'] }}",
        metrics={"precision": "max", "recall": "max"},
        alias="champion",
    )
    # [END howto_operator_mlflow_champion_challenger]

    deploy() >> newest_vision_version() >> promote
