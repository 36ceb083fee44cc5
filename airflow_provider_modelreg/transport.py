"""A ServiceClient's transport settings from a connection's extras: read by the hooks and by OCI's principals.

Below the hooks (beside :mod:`airflow_provider_modelreg.http`), so the auth rooms that build their own
token-service clients read it without climbing to the hooks' floor.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from airflow_provider_modelreg.http import MAX_IN_FLIGHT_PER_HOST, RetryPolicy


def transport_options(
    extras: dict[str, Any], retry: RetryPolicy | None = None, default_retry: RetryPolicy | None = None
) -> dict[str, Any]:
    """ServiceClient settings from a connection's extras: timeout, TLS, retries and connections per host.

    TLS verification is on unless switched off (a CA bundle path when given). Retries: a policy passed in
    code wins, then the connection's ``retry_max_attempts`` / ``retry_max_seconds`` over the service's
    default, so an operator can give a flaky endpoint more patience without touching DAG code.
    """
    verify: bool | str = True
    if extras.get("ca_bundle"):
        verify = str(extras["ca_bundle"])
    elif str(extras.get("verify", "true")).lower() in {"false", "0", "no"}:
        verify = False
    policy = retry or default_retry or RetryPolicy()
    if retry is None:
        changes: dict[str, Any] = {}
        if "retry_max_attempts" in extras:
            changes["max_attempts"] = _extra_number(extras, "retry_max_attempts", int, minimum=1)
        if "retry_max_seconds" in extras:
            changes["total_budget"] = _extra_number(extras, "retry_max_seconds", float, minimum=0)
        policy = replace(policy, **changes)
    return {
        "timeout": _extra_number(extras, "timeout", float, minimum=0.001, default=30),
        "verify": verify,
        "retry": policy,
        "max_connections": _extra_number(extras, "max_connections", int, minimum=1, default=MAX_IN_FLIGHT_PER_HOST),
        "requests_per_second": (
            _extra_number(extras, "requests_per_second", float, minimum=0.01)
            if "requests_per_second" in extras
            # None: the default budget (http.budget_for)
            else None
        ),
    }


def _extra_number(
    extras: dict[str, Any], name: str, kind: type[int] | type[float], *, minimum: float, default: Any = None
) -> Any:
    raw = extras.get(name, default)
    try:
        value = kind(raw)
        if isinstance(raw, bool) or (kind is int and float(raw) != value):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"connection extra {name!r} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
        ) from None
    if value < minimum:
        raise ValueError(f"connection extra {name!r} must be at least {minimum:g}, got {raw!r}")
    return value
