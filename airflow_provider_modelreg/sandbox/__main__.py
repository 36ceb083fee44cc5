"""``python -m airflow_provider_modelreg.sandbox``: serve the five APIs on loopback."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from types import FrameType

import uvicorn

from airflow_provider_modelreg.sandbox.app import Sandbox
from airflow_provider_modelreg.sandbox.faults import FaultRule
from airflow_provider_modelreg.sandbox.keys import register_oci_key, sandbox_connections
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
    parser.add_argument(
        "--nemo-token", action="append", default=[], help="turn NeMo auth on, accepting this Bearer token"
    )
    parser.add_argument(
        "--state-file",
        help="keep resources, settings and keys in this file and load it at start, so a restart forgets nothing",
    )
    parser.add_argument(
        "--oci-key-file",
        help="the OCI API key's private half (made there when missing): connections stay valid across restarts",
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    state = SandboxState(lifecycle_seconds={"*": args.lifecycle_seconds})
    sandbox = Sandbox(state, args.fault, state_file=args.state_file)  # loads the state file when there is one
    state.lifecycle_seconds["*"] = args.lifecycle_seconds
    state.happyrobot_api_keys.update(args.happyrobot_api_key)
    state.nemo_tokens.update(args.nemo_token)
    for item in args.fail:
        service, _, match = item.partition(":")
        rule = OutcomeRule(service=service, match=match)
        if rule not in state.outcome_rules:  # a restart with the same flags must not stack them
            state.outcome_rules.append(rule)
    url = f"http://{args.host}:{args.port}"
    server = uvicorn.Server(
        uvicorn.Config(sandbox.app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off")
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        # A SIGTERM before uvicorn takes the signal over asks the server not to serve. It must not raise: an
        # exception raised in a signal handler can land in an import uvicorn makes while it starts (its event
        # loop's Cython modules), be swallowed there ("Exception ignored in ..."), and leave a sandbox serving
        # that was told to stop and never is again.
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    key_file = register_oci_key(state, args.oci_key_file)
    try:  # from here on, a SIGTERM (even while the connections are printed) removes the throw-away key
        sandbox.save()
        print(f"modelreg sandbox on {url} (admin: {url}/_sandbox/docs)", flush=True)
        print("Connections that reach it:", flush=True)
        for conn_id, conn in sandbox_connections(url, key_file).items():
            print(f"  export AIRFLOW_CONN_{conn_id.upper()}='{json.dumps(conn)}'", flush=True)
        if not server.should_exit:
            server.run()  # uvicorn sees should_exit set before or while it starts, and stops at once
    finally:
        if not args.oci_key_file:  # the throw-away key of this run: gone when the sandbox stops
            Path(key_file).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
