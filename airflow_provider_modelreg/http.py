"""The one HTTP layer every service uses: clients, retries, errors and request ids.

Requests are described as plain data (:class:`ApiRequest`) and answers are parsed by plain functions, so
the sync hooks and the async triggers differ only in which httpx client sends (sans-I/O).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.utils
import functools
import hashlib
import json
import logging
import os
import random
import re
import ssl
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import httpx

from airflow_provider_modelreg import __version__

log = logging.getLogger(__name__)

REQUEST_ID_HEADERS = ("opc-request-id", "x-request-id", "request-id", "x-correlation-id")
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Statuses that prove the server did not act on the request, so even a non-idempotent call may be resent.
NOT_PROCESSED_STATUSES = frozenset({429})
# Connection failures that happen before a request is written, so the server cannot have acted on it.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


# Default number of requests one shared async client lets into its connection pool at once (the rest
# wait on a semaphore). httpcore rescans the whole pool for every queued request, so thousands of triggers
# queueing inside it cost O(N^2) and end in PoolTimeout; larger pools also cost more CPU per request
# (benchmarks/README.md, "Pool sizing"). 10 allow ~200 polls/s per host at 50 ms a poll; a connection's
# ``max_connections`` extra raises it for a slow host with many waits.
MAX_IN_FLIGHT_PER_HOST = 10
# Default request budget per host and process (the ``requests_per_second`` extra): waits, sync polls and
# creates all draw on it. None of the five services documents a limit; OCI's published per-tenancy
# throttles are tens of requests per second per API, so the default stays well under that.
DEFAULT_REQUESTS_PER_SECOND = 20.0


class RequestBudget:
    """A token bucket for one host and rate, shared by every client of the process (threads, event loops).

    ``reserve()`` books the next send and says how long to wait first (GCRA: a burst of ``rate`` sends is
    banked, then one every ``1/rate`` s). A 429 that still comes pauses the whole bucket for its
    ``Retry-After`` (1 s without one) and halves the rate, which climbs back by a twentieth of the cap per
    second: every sender to the host slows down, not only the one that drew it.
    """

    _registry: dict[tuple[str, float], RequestBudget] = {}
    _registry_lock = threading.Lock()

    def __init__(self, rate: float) -> None:
        self.cap = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, float(rate))
        self.throttled = 0
        self._tat = 0.0  # theoretical arrival time of the next send
        self._last = 0.0
        self._lock = threading.Lock()

    @classmethod
    def for_host(cls, host: str, rate: float) -> RequestBudget:
        with cls._registry_lock:
            budget = cls._registry.get((host, rate))
            if budget is None:
                budget = cls._registry[(host, rate)] = cls(rate)
            return budget

    def _tolerance(self) -> float:
        return (self.burst - 1.0) / self.rate

    def reserve(self, now: float | None = None) -> float:
        """Seconds to wait before sending (0 when the budget has room); the send is booked either way."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.rate < self.cap:
                self.rate = min(self.cap, self.rate + self.cap / 20 * max(0.0, now - self._last))
            self._last = now
            tat = max(self._tat, now)
            self._tat = tat + 1.0 / self.rate
            return max(0.0, tat - now - self._tolerance())

    def slow_down(self, retry_after: float | None, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self.throttled += 1
            self.rate = max(self.cap / 64, self.rate / 2)
            self._last = now
            pause = retry_after if retry_after is not None else 1.0
            self._tat = max(self._tat, now + pause + self._tolerance())


def budget_for(base_url: str, requests_per_second: float | None) -> RequestBudget | None:
    """The budget of a base URL's host: the given rate; by default DEFAULT_REQUESTS_PER_SECOND, except for
    loopback hosts (the sandbox, local test servers), which are not capped unless a rate is given."""
    url = httpx.URL(base_url)
    if requests_per_second is None:
        if url.host in {"127.0.0.1", "localhost", "::1"}:
            return None
        requests_per_second = DEFAULT_REQUESTS_PER_SECOND
    return RequestBudget.for_host(url.netloc.decode("ascii"), float(requests_per_second))


def user_agent() -> str:
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return f"airflow-provider-modelreg/{__version__} apache-airflow/{airflow_version} httpx/{httpx.__version__}"


class ServiceError(Exception):
    """A failed call to a service: what was called, the HTTP status, the service's code and message.

    ``code`` keeps the service's own error code (``RESOURCE_ALREADY_EXISTS``, ``NotAuthenticated``, ...)
    so callers can branch on it. Never carries request headers or bodies, so no secret can leak through it.
    """

    def __init__(
        self,
        *,
        service: str,
        method: str,
        path: str,
        status: int | None,
        code: str | None,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
        client_request_id: str | None = None,
    ) -> None:
        self.service = service
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        self.client_request_id = client_request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP answer"
        code = f" {self.code}" if self.code else ""
        client_rid = getattr(self, "client_request_id", None)
        if client_rid and self.request_id and self.request_id != client_rid:
            rid = f" (request id: {self.request_id}; ours: {client_rid})"
        elif client_rid or self.request_id:
            rid = f" (request id: {self.request_id or client_rid})"
        else:
            rid = ""
        return f"{self.service} {self.method} {self.path} failed: {status}{code}: {self.message}{rid}"

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only __init__ needs help to pickle
        return (_rebuild_error, (self.__dict__.copy(),))

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in RETRYABLE_STATUSES


def _rebuild_error(state: dict[str, Any]) -> ServiceError:
    err = ServiceError.__new__(ServiceError)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


def api_path(template: str, *segments: object) -> str:
    """A request path: each ``{}`` of ``template`` filled with one segment, percent-quoted whole.

    The one place a path is built from input (ids, names, workspaces): ``/``, ``?``, ``#`` and ``%`` are
    quoted, so ``../use-cases/x?y=1`` stays one segment and never reaches another path or query. An empty
    segment or a bare ``.``/``..`` (which URL normalisation would resolve away) is refused, nothing sent.
    """
    quoted = []
    for segment in segments:
        text = str(segment)
        if text in {"", ".", ".."}:
            raise ValueError(f"a path segment must not be empty, '.' or '..' (got {text!r} for {template!r})")
        quoted.append(quote(text, safe=""))
    pieces = template.split("{}")
    if len(pieces) != len(quoted) + 1:
        raise ValueError(f"path template {template!r} takes {len(pieces) - 1} segments, got {len(quoted)}")
    return pieces[0] + "".join(value + piece for value, piece in zip(quoted, pieces[1:], strict=True))


@dataclass(frozen=True)
class ApiRequest:
    """One call, described as data. ``idempotent=None`` means: decide from the method and headers."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    idempotent: bool | None = None
    # OCI answers 404 for a short while after a create (eventual consistency): retry that many 404s.
    not_found_retries: int = 0
    # The answer's bytes as they came (``ApiResponse.data``), for services that do not answer JSON
    # (an instance metadata service's PEM files, OKE's base64 token exchange).
    raw: bool = False

    def is_idempotent(self) -> bool:
        if self.idempotent is not None:
            return self.idempotent
        if self.method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}:
            return True
        return any(k.lower() == "opc-retry-token" for k in (self.headers or {}))


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    data: Any
    request_id: str | None
    service: str = ""
    method: str = ""
    path: str = ""

    def json_object(self, key: str | None = None, *, require: tuple[str, ...] = ()) -> dict[str, Any]:
        """The answer as a JSON object (the one under ``key`` when given) holding the ``require``d fields.

        Anything else (another JSON shape, an empty body, a missing field) is a ServiceError saying what came
        back, never a KeyError or TypeError deep inside a hook.
        """
        found = self.data.get(key) if key is not None and isinstance(self.data, Mapping) else None
        if key is None:
            found = self.data
        missing = [name for name in require if not isinstance(found, Mapping) or found.get(name) is None]
        if isinstance(found, Mapping) and not missing:
            return dict(found)
        where = f" under {key!r}" if key else ""
        wanted = f" with {', '.join(missing)}" if missing and isinstance(found, Mapping) else ""
        raise self.invalid(f"expected a JSON object{where}{wanted}, got {describe_json(self.data)}")

    def json_list(self, key: str | None = None) -> list[Any]:
        """The answer as a JSON array (the one under ``key`` when given; a missing key or empty body is [])."""
        found = self.data.get(key, []) if key is not None and isinstance(self.data, Mapping) else self.data
        if found is None:
            return []
        if isinstance(found, list):
            return found
        where = f" under {key!r}" if key else ""
        raise self.invalid(f"expected a JSON array{where}, got {describe_json(self.data)}")

    def decoded(self) -> ApiResponse:
        """This answer with its bytes (a ``raw`` request's ``data``) decoded as JSON; an empty body is None."""
        content = self.data
        if not content:
            return replace(self, data=None)
        try:
            return replace(self, data=json.loads(content))
        except ValueError:
            _code, message = parse_error_body(content, self.headers.get("content-type", ""))
            raise self.invalid(f"expected JSON, got {message}") from None

    def invalid(self, message: str) -> ServiceError:
        return ServiceError(
            service=self.service,
            method=self.method,
            path=self.path,
            status=self.status,
            code="InvalidResponse",
            message=message,
            request_id=self.request_id,
        )


def describe_json(data: Any) -> str:
    """A short description of a JSON value for error messages (its shape, not its content)."""
    if data is None:
        return "an empty answer"
    if isinstance(data, Mapping):
        keys = ", ".join(sorted(map(str, data))[:8])
        return f"an object with keys {keys}" if keys else "an empty object"
    return f"a JSON {type(data).__name__}"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time."""

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 30.0
    total_budget: float = 300.0
    jitter: Callable[[float], float] = field(default=lambda ceiling: random.uniform(ceiling / 2, ceiling))

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempts count from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        wait = self.jitter(ceiling)
        if retry_after is not None:  # the server knows best; the total budget still bounds it
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in REQUEST_ID_HEADERS:
        if value := headers.get(name):
            return value
    return None


_TAG = re.compile(r"<[^>]+>")


def parse_error_body(body: bytes, content_type: str) -> tuple[str | None, str]:
    """(code, message) from any of the error shapes the five services (and proxies) answer with."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = data.get("code") or data.get("error_code") or data.get("error")
        message = data.get("message")
        detail = data.get("detail")
        if isinstance(detail, list):  # FastAPI 422: [{"loc": [...], "msg": ..., "type": ...}]
            message = "; ".join(_format_validation_item(item) for item in detail)
            code = code or "ValidationError"
        elif detail is not None and message is None:
            message = detail if isinstance(detail, str) else json.dumps(detail)
        if message is None:
            message = json.dumps(data)[:500]
        return (str(code) if code is not None else None), str(message)
    if "html" in content_type or text.startswith("<"):
        text = " ".join(_TAG.sub(" ", text).split())
        return None, f"non-JSON answer (HTML): {text[:200]}" if text else "empty HTML answer"
    return None, text[:500] if text else "empty answer"


def _format_validation_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
    return f"{loc or '(body)'}: {item.get('msg', item)}"


def error_from_response(service: str, method: str, path: str, response: httpx.Response) -> ServiceError:
    code, message = parse_error_body(response.content, response.headers.get("content-type", ""))
    return ServiceError(
        service=service,
        method=method,
        path=path,
        status=response.status_code,
        code=code,
        message=message,
        request_id=request_id_of(response.headers),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def error_from_exception(service: str, method: str, path: str, exc: httpx.HTTPError) -> ServiceError:
    return ServiceError(
        service=service,
        method=method,
        path=path,
        status=None,
        code=type(exc).__name__,
        message=str(exc) or type(exc).__name__,
    )


def decode_response(
    service: str, method: str, path: str, response: httpx.Response, *, raw: bool = False
) -> ApiResponse:
    answer = ApiResponse(
        response.status_code, response.headers, response.content, request_id_of(response.headers), service, method, path
    )
    return answer if raw else answer.decoded()


@dataclass(frozen=True)
class ServicePolicy:
    """What a service's own clients do differently, read by the one retry decision (:meth:`ServiceClient._decide`).

    ``retryable(req, error)``: True/False to override the default for a failed answer, None to keep it
    (a request that is not safe to resend is never resent, whatever it says). ``explain(error)``: a longer
    message for a service error code, or None. ``request_id_header``: the header carrying a request id this
    client makes for every call (the same on its retries), so a call that got no answer can still be traced.
    """

    retryable: Callable[[ApiRequest, ServiceError], bool | None] | None = None
    explain: Callable[[ServiceError], str | None] | None = None
    request_id_header: str | None = None


class ServiceClient:
    """httpx clients for one service, built once from a connection and reused for every call.

    ``request`` (sync) and ``arequest`` (async) share request building, retry decisions and parsing;
    only the send differs. The async side borrows a :class:`SharedAsyncClient`: a triggerer running
    thousands of waits on one service keeps one small connection pool for them all, not one per wait.
    A trigger holds its borrow for its whole wait and gives it back in ``cleanup()`` (``aclose``).
    """

    def __init__(
        self,
        *,
        service: str,
        base_url: str,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        max_connections: int = MAX_IN_FLIGHT_PER_HOST,
        requests_per_second: float | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        policy: ServicePolicy | None = None,
    ) -> None:
        self.service = service
        self.policy = policy or ServicePolicy()
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.headers = {"user-agent": user_agent(), "accept": "application/json", **(headers or {})}
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self.verify = verify
        self.max_connections = max_connections
        self.budget = budget_for(self.base_url, requests_per_second)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._shared: SharedAsyncClient | None = None

    def __repr__(self) -> str:  # never show headers: they may hold a bearer token
        return f"ServiceClient(service={self.service!r}, base_url={self.base_url!r})"

    # -- clients -------------------------------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "auth": self.auth,
            "headers": self.headers,
            "timeout": self.timeout,
            "verify": tls_context(self.verify),
            "follow_redirects": False,
        }

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(**self._client_kwargs())
        return self._client

    def prepare_for_async(self) -> ServiceClient:
        """Load now what the first async send would otherwise load inside the event loop; call it from a
        worker thread. That is the TLS context (reading and parsing the CA bundle: ~20 ms of CPU, several
        times that on a loaded triggerer, for every setting's first client) and httpcore's asyncio backend
        (anyio, imported on the first connect: ~20 ms). A triggerer taking over a hundred waits otherwise
        stalls its loop past Airflow's 0.2 s warning on the first read."""
        tls_context(self.verify)
        with contextlib.suppress(ImportError):  # private paths: if they move, the loop loads them as before
            import anyio._backends._asyncio  # noqa: F401
            import httpcore._backends.anyio  # noqa: F401
        return self

    @property
    def aclient(self) -> httpx.AsyncClient:
        """The async client: one per event loop and identity, shared by every ServiceClient that has it."""
        return self._shared_async().client

    def _shared_async(self) -> SharedAsyncClient:
        if self._shared is None:
            self._shared = SharedAsyncClient.acquire(self)
        return self._shared

    def pool_key(self) -> str:
        """What makes two clients able to send through one connection pool: URL, credentials, headers,
        timeout, TLS setting and pool size (everything the pooled httpx client is built from, nothing else).

        A digest, so the registry of shared pools never holds a credential in the clear.
        """
        parts = (
            self.base_url,
            credential_key(self.auth),
            sorted(self.headers.items()),
            repr(self.timeout),
            repr(self.verify),
            self.max_connections,
        )
        return digest(repr(parts))

    def share_key(self) -> str:
        """What makes two ServiceClients interchangeable: the pool's key plus everything else a client
        decides with, i.e. the service it names in logs and errors, its service policy, its retry policy and
        its request budget. Two connections on one host with one key but another service or other retry or
        rate settings are two clients (waits sharing a client would otherwise log and retry as another's).
        """
        budget = None if self.budget is None else self.budget.cap
        parts = (self.pool_key(), self.service, repr(self.policy), repr(self.retry), budget)
        return digest(repr(parts))

    def twin(self) -> ServiceClient:
        """A copy with its own borrow of the shared async client (give it back with ``aclose``)."""
        other = copy.copy(self)
        other._client = None
        other._shared = None
        return other

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Give back this object's use of the shared async client (the last user closes it)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.release()

    # -- the shared, I/O-free parts ----------------------------------------------------------------
    def new_request_id(self, req: ApiRequest) -> str | None:
        """This call's own request id (kept across its retries), when the service's policy asks for one."""
        name = self.policy.request_id_header
        if not name:
            return None
        given = next((v for k, v in (req.headers or {}).items() if k.lower() == name), None)
        return given or uuid.uuid4().hex.upper()

    def build(
        self, req: ApiRequest, client: httpx.Client | httpx.AsyncClient, request_id: str | None = None
    ) -> httpx.Request:
        # The body is serialised here (not with json=) so what is signed is exactly what is sent.
        content = None
        headers = dict(req.headers or {})
        if request_id and self.policy.request_id_header:
            headers[self.policy.request_id_header] = request_id
        if req.json is not None:
            content = json.dumps(req.json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            headers.setdefault("content-type", "application/json")
        params = {k: v for k, v in (req.params or {}).items() if v is not None}
        # build_request (not httpx.Request) so the client's default headers apply.
        return client.build_request(req.method, req.path.lstrip("/"), params=params, content=content, headers=headers)

    def _decide(
        self,
        req: ApiRequest,
        attempt: int,
        started: float,
        outcome: httpx.Response | Exception,
        request_id: str | None = None,
    ) -> tuple[ServiceError | None, float | None]:
        """(error to raise or None, seconds to wait before retrying or None)."""
        if isinstance(outcome, httpx.Response):
            if outcome.status_code < 400:
                if request_id:
                    log.debug(
                        "%s %s %s: HTTP %d (request id: %s; ours: %s)",
                        self.service,
                        req.method,
                        req.path,
                        outcome.status_code,
                        request_id_of(outcome.headers),
                        request_id,
                    )
                return None, None
            error = error_from_response(self.service, req.method, req.path, outcome)
            error.client_request_id = request_id
            if self.policy.explain is not None and (meaning := self.policy.explain(error)):
                error.message = f"{error.message} ({meaning})"
                Exception.__init__(error, str(error))
            if outcome.status_code == 404 and attempt <= req.not_found_retries:
                retryable = True
            else:
                safe = req.is_idempotent() or outcome.status_code in NOT_PROCESSED_STATUSES
                verdict = self.policy.retryable(req, error) if self.policy.retryable is not None else None
                retryable = (error.retryable if verdict is None else verdict) and safe
        else:
            if not isinstance(outcome, httpx.HTTPError):
                raise outcome
            error = error_from_exception(self.service, req.method, req.path, outcome)
            error.client_request_id = request_id
            Exception.__init__(error, str(error))
            retryable = req.is_idempotent() or isinstance(outcome, NOT_SENT_ERRORS)
        if request_id:
            Exception.__init__(error, str(error))
        if not retryable or attempt >= self.retry.max_attempts:
            return error, None
        wait = self.retry.delay(attempt, error.retry_after)
        if time.monotonic() - started + wait > self.retry.total_budget:
            return error, None
        log.warning(
            "%s %s %s: %s; retry %d/%d in %.1fs%s",
            self.service,
            req.method,
            req.path,
            f"HTTP {error.status} {error.code or ''}".strip() if error.status else error.code,
            attempt,
            self.retry.max_attempts - 1,
            wait,
            f" (request id: {error.request_id or '-'}; ours: {request_id})" if request_id else "",
        )
        return error, wait

    # -- senders -----------------------------------------------------------------------------------
    def _note(self, outcome: httpx.Response | Exception) -> None:
        """A 429 slows every sender to this host (the shared budget), not only this request's retry."""
        if self.budget is not None and isinstance(outcome, httpx.Response) and outcome.status_code == 429:
            self.budget.slow_down(parse_retry_after(outcome.headers.get("retry-after")))

    def request(self, req: ApiRequest) -> ApiResponse:
        started = time.monotonic()
        attempt = 0
        request_id = self.new_request_id(req)
        while True:
            attempt += 1
            if self.budget is not None and (pause := self.budget.reserve()) > 0:
                self._sleep(pause)
            try:
                outcome: httpx.Response | Exception = self.client.send(self.build(req, self.client, request_id))
            except httpx.HTTPError as exc:
                outcome = exc
            self._note(outcome)
            error, wait = self._decide(req, attempt, started, outcome, request_id)
            if error is None:
                assert isinstance(outcome, httpx.Response)
                return decode_response(self.service, req.method, req.path, outcome, raw=req.raw)
            if wait is None:
                raise error
            self._sleep(wait)

    async def arequest(self, req: ApiRequest) -> ApiResponse:
        started = time.monotonic()
        attempt = 0
        request_id = self.new_request_id(req)
        while True:
            attempt += 1
            if self.budget is not None and (pause := self.budget.reserve()) > 0:
                await asyncio.sleep(pause)
            shared = self._shared_async()
            try:
                outcome: httpx.Response | Exception = await shared.send_built(
                    lambda client: self.build(req, client, request_id)
                )
            except httpx.HTTPError as exc:
                outcome = exc
            self._note(outcome)
            error, wait = self._decide(req, attempt, started, outcome, request_id)
            if error is None:
                assert isinstance(outcome, httpx.Response)
                return decode_response(self.service, req.method, req.path, outcome, raw=req.raw)
            if wait is None:
                raise error
            await asyncio.sleep(wait)


class SharedAsyncClient:
    """One httpx.AsyncClient per (event loop, :meth:`ServiceClient.pool_key`), counted by reference.

    It carries nothing per connection but what the pool key covers: the service named in logs, retries
    and the request budget stay with each ServiceClient, so clients of two services share connections only.

    Per loop because an async client's connections belong to the loop that opened them. A semaphore sized
    to the pool keeps waiting requests out of httpcore's pool (see MAX_IN_FLIGHT_PER_HOST).
    """

    _registry: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedAsyncClient]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, key: str, client: httpx.AsyncClient, size: int) -> None:
        self.key = key
        self.client = client
        self.users = 0
        self.gate = asyncio.Semaphore(size)

    @classmethod
    def acquire(cls, owner: ServiceClient) -> SharedAsyncClient:
        per_loop = cls._registry.setdefault(asyncio.get_running_loop(), {})
        key = owner.pool_key()
        shared = per_loop.get(key)
        if shared is None or shared.client.is_closed:
            size = owner.max_connections
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            shared = per_loop[key] = cls(key, httpx.AsyncClient(limits=limits, **owner._client_kwargs()), size)
        shared.users += 1
        return shared

    async def send(self, request: httpx.Request) -> httpx.Response:
        async with self.gate:
            return await self.client.send(request)

    async def send_built(self, build: Callable[[httpx.AsyncClient], httpx.Request]) -> httpx.Response:
        """``send(build(client))``, built once the gate lets it in: thousands of waits queueing at start-up
        then hold no built request each (headers, URL: dozens of objects the garbage collector walks)."""
        async with self.gate:
            return await self.client.send(build(self.client))

    async def release(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        per_loop = self._registry.get(asyncio.get_running_loop(), {})
        if per_loop.get(self.key) is self:
            del per_loop[self.key]
        await self.client.aclose()

    @classmethod
    def open_count(cls) -> int:
        """Shared clients open on the running loop (for tests and benchmarks)."""
        return len(cls._registry.get(asyncio.get_running_loop(), {}))


@functools.lru_cache(maxsize=32)
def _tls_context(verify: bool | str, source: tuple[Any, ...]) -> ssl.SSLContext:
    # ``source`` is only part of the cache key (see tls_context).
    return httpx.create_ssl_context(verify=verify) if not isinstance(verify, str) else _ca_bundle_context(verify)


def _ca_bundle_context(path: str) -> ssl.SSLContext:
    if os.path.isdir(path):
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def _modified(path: str | None) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per setting, built once per process and rebuilt when its CA files change.

    httpx otherwise builds a context and loads the whole CA bundle for every client, even for http://
    URLs: ~20 ms of CPU and ~850 KB of native memory each, which a triggerer would pay per wait.
    The cache key holds what the context is loaded from (the CA bundle path, the SSL_CERT_FILE and
    SSL_CERT_DIR variables httpx honours) and their modification times, so a rotated bundle is picked up.
    """
    files = [
        verify if isinstance(verify, str) else None,
        os.environ.get("SSL_CERT_FILE"),
        os.environ.get("SSL_CERT_DIR"),
    ]
    return _tls_context(verify, tuple((path, _modified(path)) for path in files))


def credential_key(auth: httpx.Auth | None) -> str:
    """A digest naming a credential, so two clients with the same one can share connections.

    Auth classes that do not say who they are (no ``share_key``) are never shared.
    """
    if auth is None:
        return "anonymous"
    share_key = getattr(auth, "share_key", None)
    if callable(share_key):
        return f"{type(auth).__qualname__}:{share_key()}"
    return f"unshared:{id(auth)}"


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>``; the token is kept out of ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    def share_key(self) -> str:
        return digest(self._token)

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["authorization"] = f"Bearer {self._token}"
        yield request


class BasicAuth(httpx.BasicAuth):
    """httpx's basic auth, able to say which credential it carries (as a digest) for connection sharing."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._identity = digest(username, password)

    def __repr__(self) -> str:
        return "BasicAuth(***)"

    def share_key(self) -> str:
        return self._identity
