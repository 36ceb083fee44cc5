"""``python -m airflow_provider_modelreg.sandbox``: serve the five APIs on loopback."""

from __future__ import annotations

import argparse

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
    print(f"modelreg sandbox on http://{args.host}:{args.port} (admin: /_sandbox/docs)", flush=True)
    uvicorn.run(sandbox.app, host=args.host, port=args.port, log_level=args.log_level, lifespan="off")


if __name__ == "__main__":
    main()
