"""Weekly retraining on OCI: train an AI Vision model (deferred wait until ACTIVE) → log its metrics as an
MLflow run in OCI AI Data Platform → register a model version from that run (deferred wait for READY).

Connections: ``oci_default`` (AI Vision) and ``oci_aidp_default`` (AI Data Platform MLflow). Registering
updates the ``modelreg/vision-defect-detector`` asset, which schedules ``deploy_registered_models``.
"""

from __future__ import annotations

import datetime as dt

from _assets import VISION_MODEL
from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param

from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

with DAG(
    dag_id="retrain_vision_pipeline",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "compartment_id": Param("ocid1.compartment.oc1..demo", type="string"),
        "project_id": Param("ocid1.aivisionproject.oc1..demo", type="string"),
        "dataset_id": Param("ocid1.datalabelingdataset.oc1..demo", type="string"),
    },
    tags=["modelreg", "oci", "mlflow", "pipeline"],
) as dag:
    train = OCIVisionCreateModelOperator(
        task_id="train_vision_model",
        compartment_id="{{ params.compartment_id }}",
        project_id="{{ params.project_id }}",
        model_type="OBJECT_DETECTION",
        display_name="defect-detector-{{ dag_run.run_after | ts_nodash }}",
        training_dataset={"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": "{{ params.dataset_id }}"},
        is_quick_mode=True,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        wait_timeout=12 * 3600,
    )
    log_run = MlflowCreateRunOperator(
        task_id="log_training_run",
        conn_id="oci_aidp_default",
        experiment_name="vision-defect-detector",
        metrics_from="train_vision_model",
        metric_keys={"precision": "precision", "recall": "recall", "average_precision": "averagePrecision"},
        run_params={"model_type": "OBJECT_DETECTION", "quick_mode": "true"},
        tags={"vision.model_id": "{{ ti.xcom_pull(task_ids='train_vision_model')['id'] }}"},
    )
    register = MlflowCreateModelVersionOperator(
        task_id="register_model_version",
        conn_id="oci_aidp_default",
        name="vision-defect-detector",
        source="oci://vision/models/{{ ti.xcom_pull(task_ids='train_vision_model')['id'] }}",
        run_id="{{ ti.xcom_pull(task_ids='log_training_run')['run_id'] }}",
        description="Weekly retrain of {{ dag_run.run_after | ds }}",
        deferrable=True,
        poll_interval=POLL_SECONDS,
        outlets=[VISION_MODEL],
    )
    train >> log_run >> register
