"""Faults on demand: HTTP errors with Retry-After, dropped connections, latency.

Rules are added at start-up (``--fault``) or through ``POST /_sandbox/faults`` and matched per request.
A dropped connection is made by starting a response and then aborting it, which the server answers by
closing the socket: the client sees the connection die mid-answer, the ambiguous case a retry must handle.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FaultKind = Literal["status", "drop", "drop_after", "latency"]


class DroppedConnection(Exception):
    """Raised after a response has started, so the server closes the connection."""


@dataclass
class FaultRule:
    """``drop`` aborts before the service acts; ``drop_after`` lets it act (e.g. create) and then aborts."""

    kind: FaultKind = "status"
    path: str = ".*"
    method: str | None = None
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    count: int | None = 1  # None: every matching request
    probability: float = 1.0
    fired: int = 0
    _pattern: re.Pattern[str] = field(default=re.compile(".*"), repr=False, compare=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return bool(self._pattern.search(path))

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """Start-up form ``kind[:status][@METHOD][~path-regex][xCOUNT][%PROBABILITY]``, e.g.
        ``status:429@POST~/models x2`` is written ``status:429@POST~/modelsx2``; JSON is accepted too."""
        if text.lstrip().startswith("{"):
            return cls(**json.loads(text))
        m = re.fullmatch(
            r"(?P<kind>status|drop_after|drop|latency)(?::(?P<num>[\d.]+))?(?:@(?P<method>[A-Z]+))?"
            r"(?:~(?P<path>[^x%]+))?(?:x(?P<count>\d+|\*))?(?:%(?P<prob>[\d.]+))?",
            text.strip(),
        )
        if not m:
            raise ValueError(f"bad fault rule {text!r}")
        kind = m["kind"]
        rule = cls(kind=kind, path=m["path"] or ".*", method=m["method"])
        if m["num"]:
            if kind == "latency":
                rule.delay = float(m["num"])
            else:
                rule.status = int(float(m["num"]))
        if m["count"]:
            rule.count = None if m["count"] == "*" else int(m["count"])
        if m["prob"]:
            rule.probability = float(m["prob"])
        rule.__post_init__()
        return rule


class FaultInjector:
    """ASGI middleware applying the first matching rule to each non-admin request."""

    def __init__(self, app: ASGIApp, rules: list[FaultRule] | None = None, seed: int | None = None) -> None:
        self.app = app
        self.rules: list[FaultRule] = list(rules or [])
        self.injected: dict[str, int] = {}
        self._lock = threading.Lock()
        self._random = random.Random(seed)

    def pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path) and self._random.random() < rule.probability:
                    rule.fired += 1
                    key = rule.kind if rule.kind != "status" else f"status_{rule.status}"
                    self.injected[key] = self.injected.get(key, 0) + 1
                    return rule
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        rule = self.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
            return
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.kind == "latency":
            await self.app(scope, receive, send)
        elif rule.kind == "status":
            await _send_error(send, rule)
        elif rule.kind == "drop":
            await _drop(send)
        else:  # drop_after: let the service act, swallow its answer, then drop

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            await _drop(send)


async def _send_error(send: Send, rule: FaultRule) -> None:
    body = json.dumps(
        {
            "code": "SandboxInjectedFault",
            "message": f"injected HTTP {rule.status}",
            "error_code": "TEMPORARILY_UNAVAILABLE",
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"opc-request-id", b"SANDBOX-FAULT"))
    if rule.retry_after is not None:
        headers.append((b"retry-after", str(rule.retry_after).encode()))
    elif rule.status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1048576")]})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise DroppedConnection("sandbox: dropping the connection on purpose")
