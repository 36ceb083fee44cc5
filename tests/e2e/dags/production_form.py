"""A DAG of the production-shaped test's browser scenario: it trains an OCI Vision model through the
connection a person saved in the Airflow UI's form (``oci_from_form``), waiting in the triggerer."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

# The sandbox's Vision project (as in production_waits.py; importing that file would define its DAGs here too).
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
