"""What the sandbox's OCI-flavoured services share: signature checks, OCI errors, retry tokens."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_modelreg.sandbox.oci_signature import SignatureRejected, verify_oci_request
from airflow_provider_modelreg.sandbox.state import SandboxState, request_id


def oci_error(status: int, code: str, message: str, request: Request | None = None) -> JSONResponse:
    rid = (request.headers.get("opc-request-id") if request else None) or request_id()
    return JSONResponse({"code": code, "message": message}, status_code=status, headers={"opc-request-id": rid})


def oci_json(data: Any, request: Request, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    rid = request.headers.get("opc-request-id") or request_id()
    if data is None:  # OCI's 202s for update and delete carry headers only
        return Response(status_code=status, headers={"opc-request-id": rid, **(headers or {})})
    return JSONResponse(data, status_code=status, headers={"opc-request-id": rid, **(headers or {})})


async def check_signature(request: Request, state: SandboxState) -> tuple[bytes, JSONResponse | None]:
    """(body, None) when the request is signed by a registered key, else (body, 401 in OCI's shape)."""
    body = await request.body()
    keys = {key_id: load_pem_public_key(pem.encode()) for key_id, pem in state.oci_public_keys.items()}
    raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
    if request.scope.get("query_string"):
        raw_path += "?" + request.scope["query_string"].decode("latin-1")
    try:
        verify_oci_request(request.method, raw_path, request.headers, body, keys)  # type: ignore[arg-type]
    except SignatureRejected as exc:
        state.bump("oci.rejected_signatures")
        return body, oci_error(401, exc.code, exc.message, request)
    return body, None


async def with_retry_token(
    request: Request,
    state: SandboxState,
    service: str,
    body: bytes,
    create: Callable[[], Awaitable[JSONResponse]],
) -> JSONResponse:
    """Honour ``opc-retry-token``: same token and body answer the first result; another body, 409."""
    token = request.headers.get("opc-retry-token")
    if not token:
        return await create()
    digest = hashlib.sha256(request.url.path.encode() + b"\0" + body).hexdigest()
    tokens: dict[tuple[str, str], tuple[str, int, bytes, dict[str, str]]] = state.extra.setdefault("retry_tokens", {})
    with state.lock:
        seen = tokens.get((service, token))
    if seen is not None:
        if seen[0] != digest:
            return oci_error(
                409, "InvalidatedRetryToken", "The retry token was used before with a different request body", request
            )
        state.bump(f"{service}.retry_token_replays")
        return JSONResponse(json.loads(seen[2]), status_code=seen[1], headers=seen[3])
    response = await create()
    if response.status_code < 300:
        keep = {k: v for k, v in response.headers.items() if k in ("etag", "opc-work-request-id")}
        with state.lock:
            tokens.setdefault((service, token), (digest, response.status_code, bytes(response.body), keep))
    return response
