"""The shared HTTP layer: retries and backoff, fail-fast, error shapes, request ids, user agent."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import pytest

from airflow_provider_modelreg.http import (
    ApiRequest,
    BasicAuth,
    BearerAuth,
    RetryPolicy,
    ServiceClient,
    ServiceError,
    SharedAsyncClient,
    api_path,
    parse_error_body,
    parse_retry_after,
    tls_context,
)
from airflow_provider_modelreg.sandbox.faults import FaultRule

KEY = "sandbox-happyrobot-key"
LIST = ApiRequest("GET", "/models")


def client_for(sandbox, sleeps: list[float], **policy) -> ServiceClient:
    retry = RetryPolicy(**({"max_attempts": 4, "base_delay": 0.001, "max_delay": 0.01} | policy))
    return ServiceClient(
        service="HappyRobot", base_url=f"{sandbox.url}/api/v1", auth=BearerAuth(KEY), retry=retry, sleep=sleeps.append
    )


@pytest.mark.integration
def test_retry_after_is_honoured(sandbox):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=429, retry_after=0.3, count=1))
    assert client_for(sandbox, sleeps).request(LIST).status == 200
    assert len(sleeps) == 1 and sleeps[0] >= 0.3


@pytest.mark.integration
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_with_growing_backoff(sandbox, status):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=status, count=3))
    client = client_for(sandbox, sleeps, base_delay=0.01, max_delay=1, jitter=lambda ceiling: ceiling)
    assert client.request(LIST).status == 200
    assert sleeps == [0.01, 0.02, 0.04]


@pytest.mark.integration
def test_the_retry_budget_is_bounded_and_the_last_error_is_raised(sandbox):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=503, count=None))
    with pytest.raises(ServiceError) as caught:
        client_for(sandbox, sleeps).request(LIST)
    assert caught.value.status == 503
    assert len(sleeps) == 3  # 4 attempts


@pytest.mark.integration
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_fail_fast(sandbox, status):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=status, count=None))
    with pytest.raises(ServiceError) as caught:
        client_for(sandbox, sleeps).request(LIST)
    assert caught.value.status == status and sleeps == []


@pytest.mark.integration
def test_connection_errors_are_retried_for_reads_not_for_unkeyed_creates(sandbox):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop", count=1))
    assert client_for(sandbox, sleeps).request(LIST).status == 200
    sandbox.sandbox.faults.rules.append(FaultRule(kind="drop", count=1))
    with pytest.raises(ServiceError) as caught:
        client_for(sandbox, sleeps).request(ApiRequest("POST", "/models", json={}, idempotent=False))
    assert caught.value.status is None and caught.value.retryable


@pytest.mark.integration
def test_a_refused_connection_is_retried_then_reported(sandbox):
    sleeps: list[float] = []
    client = ServiceClient(
        service="X", base_url="http://127.0.0.1:9", retry=RetryPolicy(max_attempts=2), sleep=sleeps.append
    )
    with pytest.raises(ServiceError) as caught:
        client.request(ApiRequest("POST", "/x", json={}, idempotent=False))  # nothing was sent: safe to resend
    assert caught.value.code == "ConnectError" and len(sleeps) == 1


@pytest.mark.integration
def test_async_requests_share_the_same_policy(sandbox):
    sleeps: list[float] = []
    sandbox.sandbox.faults.rules.append(FaultRule(kind="status", status=503, count=1))
    client = client_for(sandbox, sleeps)

    async def go():
        try:
            return await client.arequest(LIST)
        finally:
            await client.aclose()

    assert asyncio.run(go()).status == 200
    assert sandbox.sandbox.faults.injected == {"status_503": 1}


@pytest.mark.integration
def test_user_agent_names_the_provider_and_airflow(sandbox):
    client = client_for(sandbox, [])
    request = client.build(LIST, client.client)
    assert request.headers["user-agent"].startswith("airflow-provider-modelreg/")
    assert " apache-airflow/3." in request.headers["user-agent"]


@pytest.mark.parametrize(
    ("body", "content_type", "code", "message"),
    [
        (b'{"code": "NotAuthenticated", "message": "bad key"}', "application/json", "NotAuthenticated", "bad key"),
        (
            b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}',
            "application/json",
            "RESOURCE_DOES_NOT_EXIST",
            "no run",
        ),
        (
            b'{"detail": [{"loc": ["body", "name"], "msg": "too long"}]}',
            "application/json",
            "ValidationError",
            "name: too long",
        ),
        (
            b'{"detail": "Model with workspace \'w\' already exists"}',
            "application/json",
            None,
            "Model with workspace 'w' already exists",
        ),
        (b'{"error": "Bad Request", "message": "nope", "statusCode": 400}', "application/json", "Bad Request", "nope"),
        (
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            "text/html",
            None,
            "non-JSON answer (HTML): 502 Bad Gateway",
        ),
        (b"", "text/plain", None, "empty answer"),
    ],
)
def test_every_error_shape_gives_a_code_and_a_message(body, content_type, code, message):
    assert parse_error_body(body, content_type) == (code, message)


def test_retry_after_reads_seconds_and_http_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.001  # a past date: no wait


def test_errors_survive_pickling_for_airflow_task_failure_reporting():
    import pickle

    err = ServiceError(service="S", method="GET", path="/p", status=404, code="C", message="m", request_id="r")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) == "S GET /p failed: HTTP 404 C: m (request id: r)"


def test_bearer_tokens_stay_out_of_reprs():
    client = ServiceClient(service="S", base_url="http://x", auth=BearerAuth("tok-secret-123"))
    assert "tok-secret-123" not in repr(client) + repr(client.auth)


class TestSharedAsyncClients:
    """Async clients are shared per event loop and credential, and closed by their last user."""

    @staticmethod
    def client(token: str = KEY, base_url: str = "http://127.0.0.1:9/api", auth: object = None) -> ServiceClient:
        return ServiceClient(service="X", base_url=base_url, auth=auth or BearerAuth(token))  # type: ignore[arg-type]

    def test_same_url_and_credential_share_one_client_until_the_last_user_leaves(self):
        async def go() -> None:
            first, second = self.client(), self.client()
            assert first.aclient is second.aclient
            pool = first.aclient
            await first.aclose()
            assert not pool.is_closed and second.aclient is pool  # still in use by the second
            await second.aclose()
            assert pool.is_closed and SharedAsyncClient.open_count() == 0

        asyncio.run(go())

    @pytest.mark.parametrize(
        "other",
        [
            {"token": "another-key"},
            {"base_url": "http://127.0.0.1:9/other"},
            {"auth": BasicAuth("user", KEY)},
        ],
        ids=["other credential", "other URL", "other auth scheme"],
    )
    def test_a_different_url_or_credential_gets_its_own_client(self, other):
        async def go() -> None:
            mine, theirs = self.client(), self.client(**other)
            try:
                assert mine.aclient is not theirs.aclient
            finally:
                await mine.aclose()
                await theirs.aclose()

        asyncio.run(go())

    def test_an_auth_that_cannot_name_its_credential_is_never_shared(self):
        class OpaqueAuth(httpx.Auth):
            pass

        async def go() -> None:
            first, second = self.client(auth=OpaqueAuth()), self.client(auth=OpaqueAuth())
            try:
                assert first.aclient is not second.aclient
            finally:
                await first.aclose()
                await second.aclose()

        asyncio.run(go())

    def test_each_event_loop_has_its_own_client(self):
        shared = self.client()
        clients: list[httpx.AsyncClient] = []

        async def keep() -> None:
            clients.append(shared.aclient)
            await shared.aclose()

        asyncio.run(keep())
        asyncio.run(keep())
        assert clients[0] is not clients[1] and all(c.is_closed for c in clients)

    @pytest.mark.parametrize(
        "other",
        [
            {"service": "Y"},
            {"retry": RetryPolicy(max_attempts=2)},
            {"retry": RetryPolicy(total_budget=5)},
            {"requests_per_second": 3.0},
        ],
        ids=["other service", "other attempts", "other retry budget", "other request rate"],
    )
    def test_another_service_or_retry_or_rate_is_another_client_on_the_same_pool(self, other):
        """What a client decides with (the service it names, its retries, its budget) is in its share key,
        so waits never share a ServiceClient across them; the pool carries none of it and stays shared."""
        base = {"service": "X", "base_url": "http://127.0.0.1:9/api", "auth": BearerAuth(KEY)}

        async def go() -> None:
            mine, theirs = ServiceClient(**base), ServiceClient(**base | other)
            try:
                assert mine.share_key() != theirs.share_key()
                assert mine.share_key() == ServiceClient(**base).share_key()
                assert mine.aclient is theirs.aclient and SharedAsyncClient.open_count() == 1
            finally:
                await mine.aclose()
                await theirs.aclose()

        asyncio.run(go())

    def test_the_registry_is_keyed_by_a_digest_not_by_the_credential(self):
        async def go() -> list[str]:
            client = self.client(token="canary-token-4711")
            try:
                assert client.aclient is not None
                return list(SharedAsyncClient._registry[asyncio.get_running_loop()])
            finally:
                await client.aclose()

        keys = asyncio.run(go())
        assert len(keys) == 1 and "canary-token-4711" not in keys[0] and len(keys[0]) == 64


def test_tls_contexts_are_built_once_per_setting():
    assert tls_context(True) is tls_context(True)
    assert tls_context(False) is not tls_context(True)
    assert tls_context(False).verify_mode == ssl.CERT_NONE


def test_a_rotated_ca_bundle_is_loaded_again(tmp_path):
    import os

    from fixtures.tls import self_signed

    first_ca, _key = self_signed(tmp_path)
    first = tls_context(str(first_ca))
    assert tls_context(str(first_ca)) is first
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    second_ca, _key = self_signed(rotated)
    os.replace(second_ca, first_ca)  # same path, new certificate and modification time
    os.utime(first_ca, ns=(os.stat(first_ca).st_atime_ns, os.stat(first_ca).st_mtime_ns + 1_000_000))
    assert tls_context(str(first_ca)) is not first


# -- paths built from input (issue 14 item 8) ------------------------------------------------------
def test_a_path_segment_from_input_cannot_reach_another_path_or_query():
    path = api_path("/models/{}", "../use-cases/x?y=1")
    assert path == "/models/..%2Fuse-cases%2Fx%3Fy%3D1"
    client = ServiceClient(service="HappyRobot", base_url="http://api.invalid/api/v1")
    url = client.build(ApiRequest("GET", path), client.client).url
    assert url.raw_path == b"/api/v1/models/..%2Fuse-cases%2Fx%3Fy%3D1" and not url.query


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_an_empty_or_dot_segment_is_refused_before_anything_is_sent(segment):
    with pytest.raises(ValueError, match="path segment must not be empty"):
        api_path("/models/{}", segment)


def test_every_hole_needs_exactly_one_segment():
    assert api_path("/w/{}/m/{}", "a b", "c#d") == "/w/a%20b/m/c%23d"
    with pytest.raises(ValueError, match="takes 2 segments, got 1"):
        api_path("/w/{}/m/{}", "a")
