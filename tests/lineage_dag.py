"""Run in a child process by tests/test_lineage.py: one DAG with every create operator, run with dag.test()
while the OpenLineage provider is on (its file transport records every event). A child, because the
provider reads its configuration once per process, when Airflow loads its plugins."""

from __future__ import annotations

import datetime as dt
import os
import sys


def build_dag():  # type: ignore[no-untyped-def]
    from airflow.sdk import DAG

    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    with DAG(dag_id=os.environ["LINEAGE_DAG_ID"], schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        OCIVisionCreateModelOperator(
            task_id="vision",
            conn_id="oci_default",
            compartment_id="ocid1.compartment.oc1..lineage",
            project_id="ocid1.aivisionproject.oc1..lineage",
            model_type="OBJECT_DETECTION",
            training_dataset={
                "dataset_type": "OBJECT_STORAGE",
                "namespace_name": "acme",
                "bucket_name": "defects",
                "object_name": "train/labels.jsonl",
            },
            validation_dataset={
                "datasetType": "DATA_SCIENCE_LABELING",
                "datasetId": "ocid1.datalabelingdataset.oc1..v",
            },
            model_version="2.1",
            deferrable=True,  # lineage comes from the resumed task (execute_complete), not from execute
            poll_interval=0.2,
        )
        HappyRobotCreateModelOperator(
            task_id="happyrobot",
            use_case_id="uc-support",
            name="lineage-bot",
            from_model_id="0123456789abcdef01234567",
            train_sample_ids=["s-1", "s-2"],
            test_sample_ids=["s-9"],
            poll_interval=0.2,
        )
        NemoCreateModelOperator(
            task_id="nemo",
            name="lineage-llm",
            fileset="default/ckpt",  # one of the filesets the nemo_conn fixture uploads
            poll_interval=0.2,
        )
        run = MlflowCreateRunOperator(task_id="run", conn_id="mlflow_default", experiment_name="lineage")
        register = MlflowCreateModelVersionOperator(
            task_id="register",
            conn_id="mlflow_default",
            name="lineage-model",
            source="runs:/{{ ti.xcom_pull(task_ids='run')['run_id'] }}/model",
            run_id="{{ ti.xcom_pull(task_ids='run')['run_id'] }}",
            poll_interval=0.2,
        )
        run >> register
    return dag


def main() -> None:
    from airflow_provider_modelreg.version_compat import write_dag_to_db

    dag = build_dag()
    write_dag_to_db(dag)
    run = dag.test()
    print("TASK STATES", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, flush=True)
    print("DAG RUN STATE", run.state, flush=True)


if __name__ == "__main__":
    sys.exit(main())
