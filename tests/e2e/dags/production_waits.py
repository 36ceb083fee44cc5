"""DAGs of the production-shaped test (tests/e2e/test_production.py): many waits, a sync wait to crash, a
deferred training to mark failed, a sensor that starts in the triggerer, and a training through the connection a
person saved in the Airflow UI's form (``oci_from_form``, the browser scenario)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

VISION = {
    "compartment_id": "ocid1.compartment.oc1..aaaaaaaasandboxcompartment",
    "project_id": "ocid1.aivisionproject.oc1.iad.amaaaaaasandboxproject",
    "model_type": "OBJECT_DETECTION",
    "training_dataset": {
        "dataset_type": "DATA_SCIENCE_LABELING",
        "dataset_id": "ocid1.datalabelingdataset.oc1.iad.amaaaaaasandboxdataset",
    },
    "is_quick_mode": True,
}

with DAG(
    "prod_many_oci_waits", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False, params={"count": 100}
):

    @task
    def names(**context: object) -> list[str]:
        return [f"defects-{i}" for i in range(int(context["params"]["count"]))]  # type: ignore[index]

    OCIVisionCreateModelOperator.partial(task_id="train", deferrable=True, poll_interval=2, retries=0, **VISION).expand(
        display_name=names()
    )

with DAG("prod_sync_wait", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    HappyRobotCreateModelOperator(
        task_id="train",
        use_case_id="uc-crash",
        name="crash-bot",
        from_model_id="c" * 24,
        train_sample_ids=["s1"],
        test_sample_ids=[],
        deferrable=False,  # waits in the worker, so killing the worker interrupts the task itself
        poll_interval=1,
        retries=2,
        retry_delay=dt.timedelta(seconds=1),
    )

# Cancel on kill: a training deferred to a triggerer, which the test marks failed through the REST API.
with DAG("prod_cancel_on_mark_failed", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    OCIVisionCreateModelOperator(
        task_id="train", display_name="cancel-me", deferrable=True, poll_interval=1, retries=0, **VISION
    )

# start_from_trigger: a sensor whose model id comes from the run's conf, started in a triggerer; beside
# it, the same sensor deferrable only (its first poke runs in a worker), the control of the observable.
with DAG(
    "prod_sensor_from_trigger",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    params={"model_id": ""},
):
    HappyRobotModelSensor(
        task_id="from_trigger", model_id="{{ params.model_id }}", start_from_trigger=True, poke_interval=1, timeout=600
    )
    HappyRobotModelSensor(
        task_id="deferred", model_id="{{ params.model_id }}", deferrable=True, poke_interval=1, timeout=600
    )

with DAG("prod_form_connection", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    OCIVisionCreateModelOperator(
        task_id="train",
        conn_id="oci_from_form",
        display_name="trained-through-the-form-connection",
        deferrable=True,
        poll_interval=1,
        retries=0,
        **VISION,
    )
