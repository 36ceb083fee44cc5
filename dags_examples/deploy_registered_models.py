"""Runs whenever a retraining pipeline registers a new model version (asset-scheduled): a deployment
step would roll the new version out; here it reports what was registered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from _assets import ALL_MODELS
from airflow.sdk import DAG, AssetAny, task

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

    deploy()
