"""DAGs of the production-shaped test (tests/e2e/test_production.py): many waits, and a sync wait to crash."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

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
