"""The sandbox application: one router per service, the fault injector, and the admin endpoints."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware

from airflow_provider_modelreg.sandbox.faults import FaultInjector, FaultRule
from airflow_provider_modelreg.sandbox.persistence import load_state, save_state
from airflow_provider_modelreg.sandbox.state import OutcomeRule, SandboxState, public, request_id

# Each module has ``router(state) -> APIRouter`` serving one service at its real paths.
# oci_identity (fake IMDS, federation and OKE token exchange) comes before oci_vision, whose catch-all
# answers unknown paths in OCI's shape.
SERVICE_MODULES = ["happyrobot", "nemo", "oci_identity", "oci_vision", "mlflow"]


class Sandbox:
    """The state, the fault injector and the ASGI app, kept together so tests can reach all three."""

    def __init__(
        self,
        state: SandboxState | None = None,
        faults: list[FaultRule] | None = None,
        *,
        state_file: str | Path | None = None,
    ) -> None:
        self.state = state or SandboxState()
        # With a state file, what the sandbox knows is loaded from it now and written to it after every
        # request that may change it (any method but GET/HEAD), so a restart under a deployment forgets nothing.
        self.state_file = Path(state_file).expanduser() if state_file else None
        if self.state_file is not None:
            load_state(self.state_file, self.state)
        api = FastAPI(
            title="airflow-provider-modelreg sandbox",
            docs_url="/_sandbox/docs",
            openapi_url="/_sandbox/openapi.json",
        )
        api.add_middleware(BaseHTTPMiddleware, dispatch=_add_request_id)
        if self.state_file is not None:
            api.add_middleware(BaseHTTPMiddleware, dispatch=self._save_after_change)
        # A service module may define ``view(state, record)``: how the admin listing shows a resource now.
        self.views: dict[str, Any] = {}
        for name in SERVICE_MODULES:
            module = importlib.import_module(f"airflow_provider_modelreg.sandbox.{name}")
            api.include_router(module.router(self.state))
            if hasattr(module, "view"):
                self.views[getattr(module, "SERVICE", name)] = module.view
        _add_admin_routes(api, self)
        self.faults = FaultInjector(api, faults)
        self.app = self.faults

    def save(self) -> None:
        """Write the state file now (no-op without one)."""
        if self.state_file is not None:
            save_state(self.state, self.state_file)

    async def _save_after_change(self, request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if request.method not in ("GET", "HEAD"):
            await asyncio.to_thread(self.save)
        return response


async def _add_request_id(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    rid = request.headers.get("opc-request-id") or request_id()
    response.headers.setdefault("opc-request-id", rid)
    response.headers.setdefault("x-request-id", rid)
    return response


def _add_admin_routes(api: FastAPI, sandbox: Sandbox) -> None:
    state = sandbox.state

    @api.get("/_sandbox/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "services": SERVICE_MODULES}

    @api.post("/_sandbox/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        sandbox.faults.rules.clear()
        sandbox.faults.injected.clear()
        return {"status": "reset"}

    @api.post("/_sandbox/faults")
    async def add_faults(request: Request) -> dict[str, Any]:
        body = await request.json()
        rules = [FaultRule(**r) for r in (body if isinstance(body, list) else [body])]
        sandbox.faults.rules.extend(rules)
        return {"rules": [r.describe() for r in sandbox.faults.rules]}

    @api.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        sandbox.faults.rules.clear()
        return {"rules": []}

    @api.post("/_sandbox/outcomes")
    async def add_outcome(request: Request) -> dict[str, Any]:
        body = await request.json()
        state.outcome_rules.append(OutcomeRule(**body))
        return {"outcomes": [vars(r) for r in state.outcome_rules]}

    @api.post("/_sandbox/settings")
    async def settings(request: Request) -> dict[str, Any]:
        body = await request.json()
        state.lifecycle_seconds.update(body.get("lifecycle_seconds", {}))
        state.happyrobot_api_keys.update(body.get("happyrobot_api_keys", []))
        state.oci_public_keys.update(body.get("oci_public_keys", {}))
        state.nemo_tokens.update(body.get("nemo_tokens", []))
        state.extra.update(body.get("extra", {}))  # service knobs, e.g. "oci_vision.not_found_seconds"
        return {"lifecycle_seconds": state.lifecycle_seconds}

    @api.delete("/_sandbox/nemo-tokens")
    async def nemo_auth_off() -> dict[str, Any]:
        """Forget every NeMo token: auth is off again, as on a platform installed without it."""
        state.nemo_tokens.clear()
        return {"nemo_auth": "off"}

    @api.get("/_sandbox/resources")
    async def resources(service: str | None = None) -> dict[str, Any]:
        with state.lock:
            services = [service] if service else list(state.resources)
            shown = {s: list(state.resources.get(s, {}).values()) for s in services}
        return {
            s: [sandbox.views[s](state, r) if s in sandbox.views else public(r) for r in records]
            for s, records in shown.items()
        }

    @api.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return {"counters": dict(state.counters), "faults_injected": dict(sandbox.faults.injected)}
