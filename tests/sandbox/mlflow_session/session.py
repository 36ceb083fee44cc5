"""One ordinary MlflowClient tracking + registry session, run by MLflow's own client from .venv-mlflow.

    session.py TRACKING_URI REGISTRY_URI PREFIX OUT.json [--sign KEY_ID PEM_FILE]

Prints nothing; writes a JSON list with one entry per call: the call's name and either the answer (the
entity as a dict) or the error (HTTP status and MLflow error code). ``PREFIX`` makes names unique on a
real server that keeps its state. ``--sign`` signs every request with an OCI API key (the AI Data
Platform flavour), through ``signing_shim``. Used by tests/sandbox/test_mlflow_differential.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def plain(value: Any) -> Any:
    """An MLflow entity as JSON-ready data (entities iterate as (property, value) pairs)."""
    from mlflow.entities._mlflow_object import _MlflowObject

    if isinstance(value, _MlflowObject):
        return {k: plain(v) for k, v in dict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "to_dictionary"):
        return plain(value.to_dictionary())
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def main(argv: list[str]) -> None:
    tracking, registry, prefix, out = argv[:4]
    if "--sign" in argv:
        key_id, pem = argv[argv.index("--sign") + 1 : argv.index("--sign") + 3]
        sys.path.insert(0, str(Path(__file__).parent))
        import signing_shim

        signing_shim.install(key_id, Path(pem).read_text())

    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException, RestException

    client = MlflowClient(tracking_uri=tracking, registry_uri=registry)
    log: list[dict[str, Any]] = []

    def call(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except (RestException, MlflowException) as exc:
            body = getattr(exc, "json", None) or {}  # the error body as the server sent it (RestException)
            code = body.get("error_code") or body.get("code") or exc.error_code
            log.append({"call": name, "error": {"status": exc.get_http_status_code(), "code": code}})
            return None
        log.append({"call": name, "answer": plain(result)})
        return result

    # -- tracking --------------------------------------------------------------------------------------
    experiment = f"{prefix}-experiment"
    eid = call("create_experiment", client.create_experiment, experiment, tags={"team": "ml"})
    call("create_experiment duplicate", client.create_experiment, experiment)
    call("get_experiment", client.get_experiment, eid)
    call("get_experiment_by_name", client.get_experiment_by_name, experiment)
    call("get_experiment_by_name missing", client.get_experiment_by_name, f"{prefix}-nothing")
    call("get_experiment missing", client.get_experiment, "987654321")
    call("create_experiment bad name", client.create_experiment, "x" * 501)

    runs = []
    for i, (lr, score, kind) in enumerate([("0.1", 0.5, "alpha"), ("0.2", 0.9, "beta"), ("0.3", 0.7, "Alpha-2")]):
        run = call(
            f"create_run {i}",
            client.create_run,
            eid,
            start_time=1_700_000_000_000 + i,
            tags={"kind": kind},
            run_name=f"{prefix}-run-{i}",
        )
        rid = run.info.run_id
        runs.append(rid)
        call(f"log_param {i}", client.log_param, rid, "lr", lr)
        for step in range(3):
            call(
                f"log_metric {i}/{step}",
                client.log_metric,
                rid,
                "score",
                score + step / 100,
                1_700_000_000 + step,
                step,
            )
        call(f"set_tag {i}", client.set_tag, rid, "stage", "train" if i < 2 else "eval")
    # A run made without a name gets one from the server, "<adjective>-<noun>-<number>": its form is
    # compared (the words are drawn at random), in an experiment of its own so the searches below stay as
    # they are.
    unnamed_experiment = call("create_experiment unnamed", client.create_experiment, f"{prefix}-unnamed")
    unnamed = call("create_run unnamed", client.create_run, unnamed_experiment, start_time=1_700_000_000_000)
    if unnamed is not None:
        given = unnamed.info.run_name
        form = "<adjective>-<noun>-<number>" if re.fullmatch(r"[a-z]+-[a-z]+-\d{1,4}", given) else given
        log[-1]["answer"]["info"]["run_name"] = form
        log[-1]["answer"]["data"]["tags"] = {
            k: form if v == given else v for k, v in log[-1]["answer"]["data"]["tags"].items()
        }
        log.append({"call": "unnamed run name at most 20 characters", "answer": len(given) <= 20})
    first = runs[0]
    call("log_param same value", client.log_param, first, "lr", "0.1")
    call("log_param changed value", client.log_param, first, "lr", "0.9")
    call(
        "log_batch",
        client.log_batch,
        first,
        metrics=[Metric("loss", 1.5, 1_700_000_100, 0), Metric("loss", 1.25, 1_700_000_200, 1)],
        params=[Param("epochs", "3")],
        tags=[RunTag("note", "batch")],
    )
    call("get_run", client.get_run, first)
    call("get_run missing", client.get_run, "0" * 32)
    call("get_metric_history", client.get_metric_history, first, "score")
    call("get_metric_history unknown key", client.get_metric_history, first, "nothing")
    for key in ("bad name!", "a b/../c", "/abs", "x" * 251):
        call(f"log_metric bad key {key[:12]}", client.log_metric, first, key, 1.0, 1_700_000_000, 0)
        call(f"log_param bad key {key[:12]}", client.log_param, first, key, "v")
        call(f"set_tag bad key {key[:12]}", client.set_tag, first, key, "v")
    call("log_param long value", client.log_param, first, "long", "v" * 6001)

    def search(label: str, filter_string: str = "", order_by: list[str] | None = None) -> None:
        found = call(f"search_runs {label}", client.search_runs, [eid], filter_string, order_by=order_by)
        if found is not None:  # keep the comparison about which runs came back, in which order
            log[-1]["answer"] = [runs.index(r.info.run_id) if r.info.run_id in runs else "?" for r in found]

    search("all")
    search("metric >", "metrics.score > 0.6")
    search("metric <=", "metrics.score <= 0.72")
    search("metric = and param", "metrics.score >= 0.5 and params.lr = '0.1'")
    search("param !=", "params.lr != '0.2'")
    search("tag LIKE", "tags.kind LIKE 'al%'")
    search("tag ILIKE", "tags.kind ILIKE 'al%'")
    search("backticks", "tags.`stage` = 'eval'")
    search("run_name", f"attributes.run_name = '{prefix}-run-1'")
    search("status", "attributes.status = 'RUNNING'")
    search("start_time", "attributes.start_time > 1700000000000")
    search("order metric desc", order_by=["metrics.score DESC"])
    search("order param asc", order_by=["params.lr ASC"])
    search("order start_time", order_by=["attributes.start_time ASC"])
    search("order tag desc", order_by=["tags.kind DESC"])
    search("bad filter", "metrics.score >> 1")
    search("bad field", "nothing.score > 1")

    call("set_terminated", client.set_terminated, runs[1], "FINISHED", end_time=1_700_000_500_000)
    call("get_run finished", client.get_run, runs[1])
    search("status finished", "attributes.status = 'FINISHED'")
    call("delete_run", client.delete_run, runs[2])
    call("get_run deleted", client.get_run, runs[2])
    search("after delete")

    # -- registry ----------------------------------------------------------------------------------------
    model = f"{prefix}-model"
    call("create_registered_model", client.create_registered_model, model, tags={"owner": "ml"}, description="churn")
    call("create_registered_model duplicate", client.create_registered_model, model)
    call("get_registered_model", client.get_registered_model, model)
    call("get_registered_model missing", client.get_registered_model, f"{prefix}-nothing")
    versions = []
    for i in range(2):
        version = call(
            f"create_model_version {i}",
            client.create_model_version,
            model,
            f"s3://models/{prefix}/{i}",
            run_id=runs[i],
            tags={"ti": f"task-{i}"},
            description=f"v{i}",
        )
        versions.append(version.version)
    call("get_model_version", client.get_model_version, model, versions[0])
    call("get_model_version missing", client.get_model_version, model, "99")
    call("set_model_version_tag", client.set_model_version_tag, model, versions[0], "validated", "yes")
    call("set_model_version_tag bad key", client.set_model_version_tag, model, versions[0], "/abs", "v")
    call("set_registered_model_alias", client.set_registered_model_alias, model, "champion", versions[1])
    call("get_model_version_by_alias", client.get_model_version_by_alias, model, "champion")
    call("get_registered_model with alias", client.get_registered_model, model)
    call("set_registered_model_alias moves", client.set_registered_model_alias, model, "champion", versions[0])
    call("get_model_version_by_alias moved", client.get_model_version_by_alias, model, "champion")
    call("delete_registered_model_alias", client.delete_registered_model_alias, model, "champion")
    call("get_model_version_by_alias deleted", client.get_model_version_by_alias, model, "champion")
    call("get_model_version after alias", client.get_model_version, model, versions[0])
    call("get_latest_versions", client.get_latest_versions, model)
    call("search_model_versions by name", client.search_model_versions, f"name = '{model}'")
    call("search_model_versions by tag", client.search_model_versions, f"name = '{model}' and tags.ti = 'task-1'")
    call("search_model_versions by run", client.search_model_versions, f"run_id = '{runs[0]}'")
    call("search_model_versions no match", client.search_model_versions, f"name = '{model}' and tags.ti = 'none'")
    call("search_registered_models", client.search_registered_models, f"name = '{model}'")
    call("search_registered_models LIKE", client.search_registered_models, f"name LIKE '{prefix}-mod%'")

    Path(out).write_text(json.dumps(log, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
