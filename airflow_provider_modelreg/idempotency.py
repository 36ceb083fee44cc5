"""Create a resource once per task instance, however many times the task is tried.

The key comes from (dag_id, task_id, run_id, map_index), never the try number, so every try of one task
instance gets the same key. Services that accept an idempotency token get it; for the others the
operator looks up what an earlier try created before creating again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from airflow_provider_modelreg.http import RetryPolicy, ServiceError

T = TypeVar("T")

# What create_once logs when it finds the task instance's own resource: only ever true of a resource keyed to
# this task instance (found by its idempotency key), which an earlier try or attempt made.
REUSED = "Found the resource an earlier attempt of this task created; not creating another"


# Set in a task's context when the user asked to create anew after the recorded resource failed
# (``on_failed_resource="recreate"``): the n-th new resource of one task instance gets its own key.
GENERATION = "modelreg_create_generation"


def generation(context: Mapping[str, Any]) -> int:
    """How many times this try's task instance has been asked to create anew (0: never)."""
    return int(context.get(GENERATION) or 0)


def idempotency_key(context: Mapping[str, Any]) -> str:
    """A 40-character hex key (fits OCI's 64-character retry token and MLflow's tag values)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    if map_index is None:
        map_index = -1
    parts = [ti.dag_id, ti.task_id, ti.run_id, str(map_index)]
    if created_anew := generation(context):
        parts.append(f"generation {created_anew}")
    raw = "\x1f".join(parts)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]


def create_once(
    *,
    find: Callable[[], T | None],
    create: Callable[[], T],
    retry: RetryPolicy,
    logger: Any,
    sleep: Callable[[float], None] = time.sleep,
    found_message: str = REUSED,
) -> tuple[T, bool]:
    """Return (resource, created). Looks for an earlier try's resource before every create attempt.

    A create that failed ambiguously (5xx, dropped connection after sending) may still have created the
    resource, so it is never blindly resent: the next attempt looks it up first.

    ``found_message`` is logged when ``find`` finds one. The default says an earlier attempt of this task
    made it, which holds only when ``find`` looks for the task instance's own resource (by its key); a
    resource found by a name others share (an MLflow experiment) says so instead.
    """
    attempt = 0
    while True:
        attempt += 1
        existing = find()
        if existing is not None:
            logger.info("%s", found_message)
            return existing, False
        try:
            return create(), True
        except ServiceError as exc:
            if not exc.retryable or attempt >= retry.max_attempts:
                raise
            wait = retry.delay(attempt, exc.retry_after)
            logger.warning("create failed (%s); looking it up and retrying in %.1fs", exc, wait)
            sleep(wait)
