"""Oracle's MLOpsClient (aidp-python-client) driving the sandbox's AI Data Platform flavour.

Run by tests/sandbox/test_aidp_conformance.py with ``.venv-aidp/bin/python`` (the client needs the ``oci``
SDK and lives in its own environment); reads its settings as JSON on stdin and prints one JSON report:
``results`` (what the client read back, for the test to check) and ``problems`` (every answer's keys
checked against the client's model attribute maps: keys the model drops, required keys missing, values
the model read differently from the JSON).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import oci
from aidp_python_client.aidataplatform_dp import MLOpsClient
from aidp_python_client.aidataplatform_dp import models as m

PRIMITIVES = {"str", "int", "float", "bool", "object", "list[str]", "dict(str, str)", "dict(str, object)"}


def check(raw: Any, obj: Any, type_name: str, path: str, problems: list[str]) -> None:
    """``raw`` (the JSON) against ``obj`` (what the client made of it) for model ``type_name``, recursively."""
    if type_name.startswith("list[") and isinstance(raw, list):
        inner = type_name[5:-1]
        for i, item in enumerate(raw):
            check(item, obj[i] if obj is not None and i < len(obj) else None, inner, f"{path}[{i}]", problems)
        return
    if type_name in PRIMITIVES or not hasattr(m, type_name):
        if obj != raw:
            problems.append(f"{path}: the client read {obj!r}, the answer said {raw!r}")
        return
    cls = getattr(m, type_name)
    if not isinstance(raw, dict):
        problems.append(f"{path}: {type_name} expected an object, got {type(raw).__name__}")
        return
    model = cls()
    known = set(model.attribute_map.values())
    for key in sorted(set(raw) - known):
        problems.append(f"{path}: key {key!r} is dropped by {type_name}")
    for attr, key in model.attribute_map.items():
        required = "[Required]" in (getattr(cls, attr).__doc__ or "")
        if raw.get(key) is None:
            if required:
                problems.append(f"{path}: {type_name} requires {key!r}, the answer lacks it")
            continue
        check(raw[key], getattr(obj, attr, None), model.swagger_types[attr], f"{path}.{key}", problems)


def main() -> None:
    settings = json.load(sys.stdin)
    signer = oci.signer.Signer(
        settings["tenancy"], settings["user"], settings["fingerprint"], None, private_key_content=settings["key_pem"]
    )
    config = {"region": "us-ashburn-1", "tenancy": settings["tenancy"], "user": settings["user"]}
    config |= {"fingerprint": settings["fingerprint"], "key_content": settings["key_pem"]}
    client = MLOpsClient(
        config, signer=signer, service_endpoint=settings["url"], retry_strategy=oci.retry.NoneRetryStrategy()
    )
    platform, workspace = settings["platform"], settings["workspace"]
    problems: list[str] = []
    answers: list[tuple[str, Any]] = []
    deserialise = client.base_client.deserialize_response_data

    def tap(data: bytes, response_type: Any, allow_control_chars: Any = None) -> Any:
        obj = deserialise(data, response_type, allow_control_chars)
        if isinstance(response_type, str) and data:
            answers.append((response_type, (json.loads(data.decode("utf-8")), obj)))
        return obj

    client.base_client.deserialize_response_data = tap
    results: dict[str, Any] = {}

    # Experiments: create, read by id and name, list page by page.
    names = ["conformance-b", "conformance-a", "conformance-c"]
    ids = [
        client.create_experiment(platform, workspace, m.CreateExperimentDetails(name=n)).data.experiment_id
        for n in names
    ]
    got = client.get_experiment_by_id(platform, workspace, ids[0]).data.experiment
    by_name = client.get_experiment_by_name(platform, workspace, names[1]).data.experiment
    results["experiment"] = {"id": got.experiment_id, "name": got.name, "stage": got.lifecycle_stage}
    results["experiment_by_name"] = by_name.experiment_id == ids[1]
    pages, token, listed = 0, None, []
    while True:
        page = client.list_experiments(
            platform, workspace, m.ListExperimentsDetails(max_results=1, page_token=token)
        ).data
        pages += 1
        listed += [e.name for e in page.experiments]
        token = page.next_page_token
        if not token or pages > 10:
            break
    results["experiment_pages"] = {"pages": pages, "names": sorted(listed)}

    # Runs: create, log, finish, read, list page by page, metric history.
    now = int(time.time() * 1000)
    runs = []
    for n in ("train-1", "train-2"):
        details = m.CreateExperimentRunDetails(
            experiment_id=ids[0], run_name=n, start_time=now, tags=[m.ExperimentRunTag(key="team", value="ml")]
        )
        runs.append(client.create_experiment_run(platform, workspace, details).data.run.info.run_id)
    run_id = runs[0]
    client.log_experiment_run_param(
        platform, workspace, m.LogExperimentRunParamDetails(run_id=run_id, key="lr", value="0.01")
    )
    client.log_experiment_run_metric(
        platform,
        workspace,
        m.LogExperimentRunMetricDetails(run_id=run_id, key="loss", value=0.5, timestamp=now, step=1),
    )
    client.log_experiment_run_batch(
        platform,
        workspace,
        m.LogExperimentRunBatchDetails(
            run_id=run_id,
            metrics=[m.ExperimentRunMetric(key="loss", value=0.25, timestamp=now + 1, step=2)],
            params=[m.ExperimentRunParam(key="epochs", value="3")],
            tags=[m.ExperimentRunTag(key="stage", value="done")],
        ),
    )
    client.set_experiment_run_tag(
        platform, workspace, m.SetExperimentRunTagDetails(run_id=run_id, key="owner", value="airflow")
    )
    finished = client.update_experiment_run(
        platform, workspace, m.UpdateExperimentRunDetails(run_id=run_id, status="FINISHED", end_time=now + 5)
    ).data.run_info
    run = client.get_experiment_run_by_id(platform, workspace, run_id).data.run
    results["run"] = {
        "status": [finished.status, run.info.status],
        "end_time": run.info.end_time,
        "params": {p.key: p.value for p in run.data.params},
        "metrics": {x.key: x.value for x in run.data.metrics},
        "tags": {t.key: t.value for t in run.data.tags if not t.key.startswith("mlflow.")},
    }
    history = client.get_experiment_run_metric_history(platform, workspace, run_id, "loss").data
    results["metric_history"] = [x.value for x in history.metrics]
    pages, token, listed = 0, None, []
    while True:
        page = client.list_experiment_runs(
            platform,
            workspace,
            m.ListExperimentRunsDetails(experiment_ids=[ids[0]], max_results=1, page_token=token),
        ).data
        pages += 1
        listed += [r.info.run_id for r in page.runs]
        token = page.next_page_token
        if not token or pages > 10:
            break
    results["run_pages"] = {"pages": pages, "found_all": sorted(listed) == sorted(runs)}

    # Registry: a registered model, two versions (workspace and platform scope), waits to READY, lists.
    model_name = "conformance-model"
    client.create_registered_model(platform, m.CreateRegisteredModelDetails(name=model_name, description="d"))
    results["registered_model"] = client.get_registered_model(platform, model_name).data.registered_model.name
    source = f"runs:/{run_id}/model"
    first = client.create_workspace_model_version(
        platform, workspace, m.CreateModelVersionDetails(name=model_name, source=source, run_id=run_id)
    ).data.model_version
    second = client.create_model_version(
        platform, m.CreateModelVersionDetails(name=model_name, source=source, run_id=run_id)
    ).data.model_version
    results["created_status"] = [first.status, second.status]
    waited = []
    for version in (first.version, second.version):
        done = oci.wait_until(
            client,
            client.get_model_version(platform, model_name, version),
            evaluate_response=lambda r: r.data.model_version.status != "PENDING_REGISTRATION",
            max_interval_seconds=1,
            max_wait_seconds=30,
        )
        waited.append(done.data.model_version.status)
    results["waited_status"] = waited
    client.set_model_version_tag(
        platform, m.SetModelVersionTagDetails(name=model_name, version=first.version, key="approved", value="yes")
    )
    tagged = client.get_model_version(platform, model_name, first.version).data.model_version
    results["version_tags"] = {t.key: t.value for t in tagged.tags or []}
    pages, token, listed = 0, None, []
    while True:
        page = client.list_model_versions(platform, filter=f"name='{model_name}'", max_results=1, page_token=token).data
        pages += 1
        listed += [v.version for v in page.model_versions]
        token = page.next_page_token
        if not token or pages > 10:
            break
    results["version_pages"] = {"pages": pages, "versions": sorted(listed)}
    models = client.list_registered_models(platform, max_results=10).data.registered_models
    results["registered_models"] = [r.name for r in models]

    for i, (type_name, (raw, obj)) in enumerate(answers):
        check(raw, obj, type_name, f"answer {i} ({type_name})", problems)
    results["answers_checked"] = len(answers)
    print(json.dumps({"results": results, "problems": problems}))


if __name__ == "__main__":
    main()
