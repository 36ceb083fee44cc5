"""``python -m airflow_provider_modelreg.sandbox``: serve the five APIs on loopback."""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import uvicorn

from airflow_provider_modelreg.sandbox.app import Sandbox
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.state import OutcomeRule, SandboxState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_modelreg.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--lifecycle-seconds", type=float, default=3.0, help="how long resources take to finish")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=FaultRule.parse,
        help="inject a fault, e.g. 'status:429@POSTx2', 'drop~/models', 'latency:0.5x*%%0.2' or a JSON rule",
    )
    parser.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="SERVICE:MATCH",
        help="resources of SERVICE whose name contains MATCH end in their failure state",
    )
    parser.add_argument("--happyrobot-api-key", action="append", default=[], help="accepted API keys")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    state = SandboxState(lifecycle_seconds={"*": args.lifecycle_seconds})
    state.happyrobot_api_keys.update(args.happyrobot_api_key)
    for item in args.fail:
        service, _, match = item.partition(":")
        state.outcome_rules.append(OutcomeRule(service=service, match=match))
    sandbox = Sandbox(state, args.fault)
    url = f"http://{args.host}:{args.port}"
    key_file = register_throwaway_oci_key(state)
    print(f"modelreg sandbox on {url} (admin: {url}/_sandbox/docs)", flush=True)
    print("Connections that reach it:", flush=True)
    for conn_id, conn in sandbox_connections(url, key_file).items():
        print(f"  export AIRFLOW_CONN_{conn_id.upper()}='{json.dumps(conn)}'", flush=True)
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off")


OCI_KEY_ID = "ocid1.tenancy.oc1..sandbox/ocid1.user.oc1..sandbox/00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"


def register_throwaway_oci_key(state: SandboxState) -> str:
    """A fresh API key for this sandbox run only: its public half is registered, its private half written
    to a private temporary file for the printed connections (no key is ever committed or reused)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    state.oci_public_keys[OCI_KEY_ID] = public.decode()
    fd, path = tempfile.mkstemp(prefix="modelreg-sandbox-oci-", suffix=".pem")  # created 0600
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return path


def sandbox_connections(url: str, key_file: str) -> dict[str, dict[str, object]]:
    tenancy, user, fingerprint = OCI_KEY_ID.split("/")
    oci = {"tenancy": tenancy, "user": user, "fingerprint": fingerprint, "key_file": key_file, "region": "us-ashburn-1"}
    return {
        "happyrobot_default": {
            "conn_type": "happyrobot",
            "host": f"{url}/api/v1",
            "password": "sandbox-happyrobot-key",
        },
        "oci_default": {"conn_type": "oci", "host": url, "extra": oci},
        "oci_aidp_default": {
            "conn_type": "oci_aidp",
            "host": url,
            "extra": oci | {"ai_data_platform_id": "ocid1.aidataplatform.oc1..sandbox", "workspace_key": "sandbox"},
        },
        "nemo_default": {"conn_type": "nemo_platform", "host": url},
    }


if __name__ == "__main__":
    main()
