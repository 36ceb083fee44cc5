"""OpenLineage: every create operator reports the training data it names and the model it made.

Proved through a DAG run with the OpenLineage provider on and its file transport recording the events,
in a child process (the provider reads its configuration once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_modelreg.lineage import DatasetName, oci_dataset, uri_dataset

pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is in the dev group")

CHILD = Path(__file__).with_name("lineage_dag.py")


def test_uri_sources_are_named_as_the_spec_names_object_stores():
    assert uri_dataset("s3://bucket/models/v3") == DatasetName("s3://bucket", "models/v3")
    assert uri_dataset("gs://b/k") == DatasetName("gs://b", "k")
    assert uri_dataset("oci://vision/models/ocid1.x") == DatasetName("oci://vision", "models/ocid1.x")
    assert uri_dataset("not a uri") is None


def test_oci_datasets_take_either_key_spelling():
    expected = DatasetName("oci://bkt@ns", "a/b.jsonl")
    fields = {"namespace_name": "ns", "bucket_name": "bkt", "object_name": "a/b.jsonl"}
    assert oci_dataset({"dataset_type": "OBJECT_STORAGE", **fields}) == expected
    camel = {"namespaceName": "ns", "bucketName": "bkt", "objectName": "a/b.jsonl"}
    assert oci_dataset({"datasetType": "OBJECT_STORAGE", **camel}) == expected
    assert oci_dataset({"datasetType": "DATA_SCIENCE_LABELING", "datasetId": "ocid1.d"}) == DatasetName(
        "oci://datalabeling", "ocid1.d"
    )


@pytest.fixture
def lineage_events(
    airflow_db: None, sandbox: Any, happyrobot_conn, oci_vision_conn, nemo_conn, tmp_path: Path
) -> dict[str, dict[str, Any]]:
    """Run the five create operators in one DAG with OpenLineage on; the COMPLETE event of each task."""
    events_file = tmp_path / "events.jsonl"
    dag_id = f"lineage_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        {
            "LINEAGE_DAG_ID": dag_id,
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events_file), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "modelreg-test",
            "AIRFLOW_CONN_HAPPYROBOT_DEFAULT": json.dumps(happyrobot_conn),
            "AIRFLOW_CONN_OCI_DEFAULT": json.dumps(oci_vision_conn),
            "AIRFLOW_CONN_NEMO_DEFAULT": json.dumps(nemo_conn),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps({"conn_type": "mlflow", "host": sandbox.url}),
            "PYTHONPATH": os.pathsep.join([str(CHILD.parents[1]), env.get("PYTHONPATH", "")]),
        }
    )
    from airflow.configuration import conf

    # The child writes to this test session's metadata DB, whatever an earlier test did to the environment.
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = conf.get("database", "sql_alchemy_conn")
    out = subprocess.run([sys.executable, str(CHILD)], env=env, capture_output=True, text=True, timeout=240)
    states = next((line for line in out.stdout.splitlines() if line.startswith("TASK STATES")), "no task states")
    assert "DAG RUN STATE success" in out.stdout, f"{states}\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
    complete: dict[str, dict[str, Any]] = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        job = event["job"]["name"]
        if event["eventType"] == "COMPLETE" and job.startswith(f"{dag_id}."):
            complete[job.removeprefix(f"{dag_id}.")] = event
    return complete


def _names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


@pytest.mark.integration
def test_every_create_operator_reports_its_training_data_and_its_model(lineage_events, sandbox):
    assert set(lineage_events) >= {"vision", "happyrobot", "nemo", "run", "register"}
    base = sandbox.url

    vision = lineage_events["vision"]
    assert _names(vision["inputs"]) == [
        ("oci://defects@acme", "train/labels.jsonl"),
        ("oci://datalabeling", "ocid1.datalabelingdataset.oc1..v"),
    ]
    [model] = vision["outputs"]
    facet = model["facets"]["modelRegistry"]
    assert model["namespace"] == base and model["name"] == f"models/{facet['id']}"
    assert facet["service"] == "oci_vision" and facet["id"].startswith("ocid1.aivisionmodel")
    assert facet["version"] == "2.1" and facet["lifecycleState"] == "ACTIVE"
    assert model["facets"]["version"]["datasetVersion"] == "2.1"

    bot = lineage_events["happyrobot"]
    assert _names(bot["inputs"]) == [
        (f"{base}/api/v1", "use-cases/uc-support/samples/s-1"),
        (f"{base}/api/v1", "use-cases/uc-support/samples/s-2"),
    ]
    [model] = bot["outputs"]
    assert model["facets"]["modelRegistry"]["service"] == "happyrobot"
    assert model["facets"]["modelRegistry"]["lifecycleState"] == "active"

    nemo = lineage_events["nemo"]
    assert _names(nemo["inputs"]) == [(base, "filesets/default/ckpt")]
    [model] = nemo["outputs"]
    assert (model["name"], model["facets"]["modelRegistry"]["id"]) == (
        "models/default/lineage-llm",
        "default/lineage-llm",
    )

    run = lineage_events["run"]
    [run_ds] = run["outputs"]
    run_id = run_ds["facets"]["modelRegistry"]["id"]
    assert run["inputs"] == [] and run_ds["name"] == f"runs/{run_id}"
    assert run_ds["facets"]["modelRegistry"]["lifecycleState"] == "FINISHED"

    register = lineage_events["register"]
    # The version's input is the run's output: the graph joins them.
    assert _names(register["inputs"]) == [(run_ds["namespace"], run_ds["name"])]
    [version] = register["outputs"]
    assert (version["namespace"], version["name"]) == (base, "models/lineage-model")
    assert version["facets"]["modelRegistry"] | {"_producer": None, "_schemaURL": None} == {
        "service": "mlflow",
        "id": "lineage-model/1",
        "version": "1",
        "lifecycleState": "READY",
        "_producer": None,
        "_schemaURL": None,
    }
    assert version["facets"]["version"]["datasetVersion"] == "1"
