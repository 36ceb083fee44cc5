"""A small OCI request-signing shim for MLflow's own client (runs inside .venv-mlflow, never imported by
the provider or its tests): every request ``requests`` sends is signed with an OCI API key, as the OCI AI
Data Platform front door demands (draft-cavage HTTP signatures, rsa-sha256; Oracle's sample requests in
shared/OCI-SIGNING.md show the rules: date, (request-target) and host always, plus content-length,
content-type and x-content-sha256 for a body method)."""

from __future__ import annotations

import base64
import hashlib
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import requests.adapters
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

BODY_METHODS = {"POST", "PUT", "PATCH"}


def install(key_id: str, private_pem: str) -> None:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    send = requests.adapters.HTTPAdapter.send

    def signed_send(self: Any, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        url = urlsplit(request.url or "")
        target = url.path + (f"?{url.query}" if url.query else "")
        headers = request.headers
        headers["date"] = formatdate(usegmt=True)
        headers["host"] = url.netloc
        names = ["date", "(request-target)", "host"]
        if request.method in BODY_METHODS:
            body = request.body or b""
            body = body.encode() if isinstance(body, str) else body
            headers.setdefault("content-type", "application/json")
            headers["content-length"] = str(len(body))
            headers["x-content-sha256"] = base64.b64encode(hashlib.sha256(body).digest()).decode()
            names += ["content-length", "content-type", "x-content-sha256"]
        lines = [
            f"(request-target): {request.method.lower()} {target}" if n == "(request-target)" else f"{n}: {headers[n]}"
            for n in names
        ]
        signature = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
        headers["authorization"] = (
            f'Signature version="1",keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
            f'signature="{base64.b64encode(signature).decode()}"'
        )
        return send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = signed_send  # type: ignore[method-assign]
