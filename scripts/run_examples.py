"""The main job: run every example DAG with ``airflow dags test`` against the sandbox (and a real MLflow
server when one is installed), deferred waits included, then print what was created.

Run it as ``./dev demo`` (which prepares the environments), or directly with the project's Python:
``.venv/bin/python scripts/run_examples.py [--only DAG_ID ...] [--keep-running]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
HAPPYROBOT_KEY = "sandbox-happyrobot-key"
OCI_TENANCY = "ocid1.tenancy.oc1..demotenancy"
OCI_USER = "ocid1.user.oc1..demouser"
OCI_FINGERPRINT = "de:mo:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
# Asset-scheduled DAGs run after the DAGs that feed them.
RUN_LAST = ("deploy_registered_models", "approve_and_promote")
# Where the examples promote: (connection, registered model, alias); the summary prints the holder.
PROMOTED = (
    ("oci_aidp_default", "vision-defect-detector", "champion"),
    ("mlflow_default", "defect-detector", "champion"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer at {url} within {timeout:.0f}s")


def post_json(url: str, body: Any) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def throwaway_oci_key() -> tuple[str, str]:
    """A fresh RSA key pair for this run only (never committed): (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class Processes:
    """Background servers of this run, stopped (process group and all) on exit."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        proc = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.running.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def connections(sandbox: str, mlflow: str | None, private_pem: str) -> dict[str, dict[str, Any]]:
    oci_fields = {
        "tenancy": OCI_TENANCY,
        "user": OCI_USER,
        "fingerprint": OCI_FINGERPRINT,
        "private_key": private_pem,
        "region": "us-ashburn-1",
    }
    conns: dict[str, dict[str, Any]] = {
        "happyrobot_default": {"conn_type": "happyrobot", "host": f"{sandbox}/api/v1", "password": HAPPYROBOT_KEY},
        "oci_default": {"conn_type": "oci", "host": sandbox, "extra": oci_fields},
        "oci_aidp_default": {
            "conn_type": "oci_aidp",
            "host": sandbox,
            "extra": oci_fields
            | {"ai_data_platform_id": "ocid1.aidataplatform.oc1..demo", "workspace_key": "demo-workspace"},
        },
        "nemo_default": {"conn_type": "nemo_platform", "host": sandbox},
    }
    if mlflow:
        conns["mlflow_default"] = {"conn_type": "mlflow", "host": mlflow}
    return conns


def discover_dags(env: dict[str, str]) -> list[str]:
    code = (
        "import json, sys; from airflow_provider_modelreg.version_compat import dag_bag as DagBag; "
        "bag = DagBag(sys.argv[1]); "
        "print(json.dumps({'dags': sorted(bag.dag_ids), 'errors': {k: str(v) for k, v in bag.import_errors.items()}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "dags_examples")], env=env, capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    if found["errors"]:
        raise SystemExit(f"example DAGs failed to import: {found['errors']}")
    dags = [d for d in found["dags"] if d not in RUN_LAST]
    return dags + [d for d in RUN_LAST if d in found["dags"]]


def run_dags_in_one_process(dags: list[str], env: dict[str, str]) -> dict[str, str]:
    """Run ``airflow dags test`` for each DAG, in one child process (the CLI's own parser and command,
    called once per DAG) so Airflow starts once, not once per DAG. Progress is read from a results file."""
    results_file = DEMO / "logs" / "results.jsonl"
    results_file.unlink(missing_ok=True)
    with (DEMO / "logs" / "dags.log").open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, __file__, "--child", str(results_file), *dags],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        results: dict[str, str] = {}
        seen = 0
        while True:
            lines = results_file.read_text().splitlines() if results_file.exists() else []
            for line in lines[seen:]:
                event = json.loads(line)
                if event["event"] == "start":
                    print(f"  ({event['index']}/{len(dags)}) {event['dag_id']} ...", end=" ", flush=True)
                else:
                    results[event["dag_id"]] = event["state"]
                    print(f"{event['state']} in {event['seconds']:.1f}s", flush=True)
            seen = len(lines)
            if child.poll() is not None and seen == len(lines):
                break
            time.sleep(0.2)
    for dag_id in dags:
        results.setdefault(dag_id, "not run (see .demo/logs/dags.log)")
    return results


def child_main(results_file: str, dags: list[str]) -> None:
    """Inside the child: `airflow dags test <dag_id>` for each DAG, as the CLI runs it."""
    from airflow.cli import cli_parser
    from airflow.models.dagrun import DagRun

    sys.path.insert(0, str(ROOT))
    from scripts.hitl_responder import HitlResponder

    parser = cli_parser.get_parser()
    # approve_and_promote asks a person before promoting: the demo answers "Approve" through Airflow's HITL
    # REST API (the call the Required Actions UI makes), logged in dags.log.
    responder = HitlResponder("Approve", dag_ids={"approve_and_promote"})
    with open(results_file, "a") as out, responder:
        for index, dag_id in enumerate(dags, 1):
            out.write(json.dumps({"event": "start", "dag_id": dag_id, "index": index}) + "\n")
            out.flush()
            started = time.monotonic()
            args = parser.parse_args(["dags", "test", dag_id])
            try:
                args.func(args)
                runs = sorted(DagRun.find(dag_id=dag_id), key=lambda r: r.start_date)
                state = str(runs[-1].state) if runs else "no run"
            except Exception as exc:  # report and go on with the next DAG
                state = f"error: {exc}"
            out.write(
                json.dumps({"event": "end", "dag_id": dag_id, "state": state, "seconds": time.monotonic() - started})
                + "\n"
            )
            out.flush()
    for answer in responder.answered:
        print(f"demo answered Approve to {answer['dag_id']}.{answer['task_id']}: {answer['subject']}", flush=True)
    for error in responder.errors:
        print(f"HITL responder error: {error}", flush=True)


def alias_holders(env: dict[str, str]) -> list[str]:
    """Which version holds each alias the examples promote, read with the provider's own hook."""
    code = (
        "import json, sys; from airflow_provider_modelreg.hooks.mlflow import get_aliases, mlflow_hook; "
        "out = []\n"
        "for conn_id, name, alias in json.loads(sys.argv[1]):\n"
        "    try: out.append([conn_id, name, alias, get_aliases(mlflow_hook(conn_id), name).get(alias)])\n"
        "    except Exception as exc: out.append([conn_id, name, alias, f'not readable: {exc}'])\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(PROMOTED)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return [f"  (could not read the aliases: {done.stderr.strip().splitlines()[-1:]})"]
    lines = []
    for conn_id, name, alias, version in json.loads(done.stdout.strip().splitlines()[-1]):
        held = f"version {version}" if version and not str(version).startswith("not") else (version or "no version")
        lines.append(f"  {name} ({conn_id}): alias {alias!r} -> {held}")
    return lines


def summarise(sandbox: str, mlflow: str | None) -> list[str]:
    lines = []
    resources = get_json(f"{sandbox}/_sandbox/resources")
    for service, items in sorted(resources.items()):
        for item in items:
            lines.append(f"  {service:<11} {describe(service, item)}")
    if mlflow:
        api = f"{mlflow}/api/2.0/mlflow"
        experiments = post_json(f"{api}/experiments/search", {"max_results": 100}).get("experiments", [])
        ids = [e["experiment_id"] for e in experiments]
        runs = (
            post_json(f"{api}/runs/search", {"experiment_ids": ids, "max_results": 100}).get("runs", []) if ids else []
        )
        for run in runs:
            info, data = run["info"], run.get("data", {})
            metrics = ", ".join(f"{m['key']}={m['value']:.3g}" for m in data.get("metrics", []))
            lines.append(
                f"  mlflow-srv  run {info['run_id']} {info.get('run_name')} {info['status']} {metrics}".rstrip()
            )
        for version in get_json(f"{api}/model-versions/search?max_results=100").get("model_versions", []):
            lines.append(f"  mlflow-srv  model version {version['name']} v{version['version']} {version['status']}")
    return lines


def describe(service: str, item: dict[str, Any]) -> str:
    ident = item.get("id") or item.get("run_id") or item.get("name")
    state = item.get("status") or item.get("lifecycleState") or ("spec ready" if item.get("spec") else "")
    metrics = {k: item[k] for k in ("precision", "recall", "averagePrecision") if item.get(k) is not None}
    name = item.get("name") or item.get("displayName") or item.get("run_name") or ""
    extra = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    return f"{ident} {name} {state} {extra}".strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="run only this DAG id (repeatable)")
    parser.add_argument("--lifecycle-seconds", type=float, default=3.0)
    parser.add_argument("--keep-running", action="store_true", help="leave the sandbox up afterwards")
    args = parser.parse_args()

    t0 = time.monotonic()
    shutil.rmtree(DEMO / "airflow", ignore_errors=True)
    (DEMO / "logs").mkdir(parents=True, exist_ok=True)
    procs = Processes()
    try:
        port = free_port()
        sandbox = f"http://127.0.0.1:{port}"
        print(f"[1/4] sandbox on {sandbox} (lifecycles take {args.lifecycle_seconds:g}s)", flush=True)
        procs.start(
            [
                sys.executable,
                "-m",
                "airflow_provider_modelreg.sandbox",
                "--port",
                str(port),
                "--lifecycle-seconds",
                str(args.lifecycle_seconds),
                "--fail",
                "oci_vision:doomed",
            ],
            DEMO / "logs" / "sandbox.log",
        )
        wait_http(f"{sandbox}/_sandbox/health", 30, "the sandbox")
        private_pem, public_pem = throwaway_oci_key()
        post_json(
            f"{sandbox}/_sandbox/settings",
            {"oci_public_keys": {f"{OCI_TENANCY}/{OCI_USER}/{OCI_FINGERPRINT}": public_pem}},
        )
        # The NeMo examples' checkpoints (a tiny Llama's config.json, which the spec analysis reads) and project,
        # made through the Files and Entities APIs as a user would before registering a model (the platform
        # answers 400 to a model naming a fileset that does not exist, 422 to a project that does not).
        from airflow_provider_modelreg.sandbox.nemo import TINY_LLAMA_CONFIG

        files = f"{sandbox}/apis/files/v2/workspaces/default/filesets"
        for fileset in ("support-bot-sft-checkpoint", "support-llm-lora-checkpoints"):
            post_json(files, {"name": fileset, "purpose": "model"})
            request = urllib.request.Request(
                f"{files}/{fileset}/-/config.json", data=json.dumps(TINY_LLAMA_CONFIG).encode(), method="PUT"
            )
            urllib.request.urlopen(request, timeout=30).close()
        post_json(f"{sandbox}/apis/entities/v2/workspaces/default/projects", {"name": "support-bot"})

        mlflow = None
        mlflow_bin = Path(os.environ.get("MODELREG_MLFLOW_BIN", ROOT / ".venv-mlflow" / "bin" / "mlflow"))
        if mlflow_bin.exists():
            mport = free_port()
            mlflow = f"http://127.0.0.1:{mport}"
            store = DEMO / "mlflow"
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(parents=True)
            print(f"[2/4] real MLflow server on {mlflow}", flush=True)
            procs.start(
                [
                    str(mlflow_bin),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mport),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{store}/mlflow.db",
                    "--default-artifact-root",
                    str(store / "artifacts"),
                ],
                DEMO / "logs" / "mlflow.log",
            )
        else:
            print(
                "[2/4] no MLflow server installed (./dev demo installs one); MLflow-server DAGs will use none",
                flush=True,
            )

        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(DEMO / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "MODELREG_SANDBOX_URL": sandbox,
                "MODELREG_EXAMPLE_POLL_SECONDS": "1",
                # Airflow puts a DAG bundle's folder on sys.path for its DAGs; do the same for discovery.
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT / "dags_examples"), os.environ.get("PYTHONPATH")])
                ),  # the sandbox is fast; real services get 30 s
            }
        )
        for conn_id, conn in connections(sandbox, mlflow, private_pem).items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        print("[3/4] preparing the Airflow metadata DB", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
        if mlflow:
            wait_http(f"{mlflow}/health", 120, "the MLflow server")

        dags = args.only or discover_dags(env)
        print(f"[4/4] running {len(dags)} example DAGs with `airflow dags test` (log: .demo/logs/dags.log)", flush=True)
        results = run_dags_in_one_process(dags, env)

        print("\nWhat the example DAGs created:")
        for line in summarise(sandbox, mlflow):
            print(line)
        print("\nWho holds the alias after deploy_registered_models and approve_and_promote:")
        for line in alias_holders(env):
            print(line)
        failed = [d for d, s in results.items() if s != "success"]
        print(f"\n{len(results) - len(failed)} of {len(results)} DAG runs succeeded in {time.monotonic() - t0:.0f}s")
        if failed:
            print(f"failed: {', '.join(failed)} (see .demo/logs/dags.log)")
        if args.keep_running:
            print(f"sandbox still running at {sandbox}; Ctrl-C to stop")
            signal.pause()
        return 1 if failed else 0
    finally:
        procs.stop()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child_main(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
