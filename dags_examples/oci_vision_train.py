"""Train a custom OCI AI Vision model every week and wait for it in the triggerer.

Connection ``oci_default`` (type ``oci``): tenancy, user, fingerprint, private key (or key file / config
profile) and region. To try it offline, start the sandbox (``python -m airflow_provider_modelreg.sandbox``),
register your API key's public half with it, and set the connection's host to the sandbox URL.
Trigger with other ``params`` (compartment, project, dataset) to train on your own data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from _settings import POLL_SECONDS
from airflow.sdk import DAG, Param, task

from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

with DAG(
    dag_id="oci_vision_train",
    schedule="@weekly",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    # Keep booleans, numbers and dicts from params as they are instead of turning them into strings.
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    params={
        "compartment_id": Param("ocid1.compartment.oc1..aaaaaaaasandboxcompartment", type="string"),
        "project_id": Param("ocid1.aivisionproject.oc1.iad.amaaaaaasandboxproject", type="string"),
        "dataset_id": Param("ocid1.datalabelingdataset.oc1.iad.amaaaaaasandboxdataset", type="string"),
        "model_type": Param("OBJECT_DETECTION", enum=["OBJECT_DETECTION", "IMAGE_CLASSIFICATION"]),
        "is_quick_mode": Param(True, type="boolean"),
        "max_training_duration_in_hours": Param(2.0, type="number", exclusiveMinimum=0),
    },
    tags=["oci", "vision", "example"],
) as dag:
    # [START howto_operator_oci_vision_create_model]
    train_model = OCIVisionCreateModelOperator(
        task_id="train_model",
        conn_id="oci_default",
        compartment_id="{{ params.compartment_id }}",
        project_id="{{ params.project_id }}",
        model_type="{{ params.model_type }}",
        training_dataset={"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": "{{ params.dataset_id }}"},
        display_name="defects-{{ dag_run.run_after | ts_nodash }}",
        description="Weekly retraining of the defect detector.",
        is_quick_mode="{{ params.is_quick_mode }}",
        max_training_duration_in_hours="{{ params.max_training_duration_in_hours }}",
        freeform_tags={"team": "vision", "dag": "{{ dag.dag_id }}"},
        deferrable=True,
        poll_interval=POLL_SECONDS,
        wait_timeout=12 * 3600,
    )
    # [END howto_operator_oci_vision_create_model]

    @task
    def report(model: dict[str, Any]) -> dict[str, Any]:
        """What a downstream gate would read: the trained model's headline metrics."""
        keys = ("id", "precision", "recall", "averagePrecision", "testImageCount", "trainedDurationInHours")
        return {key: model.get(key) for key in keys}

    # A second look from a sensor, as a downstream DAG that did not create the model would do; the create
    # operator keeps the model and work request ids under the "oci_vision_model" XCom key.
    # [START howto_sensor_oci_vision_model]
    confirm_active = OCIVisionModelSensor(
        task_id="confirm_active",
        conn_id="oci_default",
        model_id="{{ ti.xcom_pull(task_ids='train_model', key='oci_vision_model')['model_id'] }}",
        work_request_id="{{ ti.xcom_pull(task_ids='train_model', key='oci_vision_model')['work_request_id'] }}",
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=600,
    )
    # [END howto_sensor_oci_vision_model]
    train_model >> confirm_active >> report(train_model.output)
