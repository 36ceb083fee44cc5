"""The durable record of what a task instance created, kept across its tries.

Four functions, the whole public surface (other modules call exactly these):

``remember(context, name, value, *, claim=value) -> bool``
    Record ``value`` (a JSON value, usually a resource id or a dict of ids) under ``name`` for the
    running task instance, and claim ``claim`` (default: ``value``; None: no claim, for a note about the
    task instance itself rather than a resource) for that task instance. ``name``
    names the kind of resource, ``"<service>"`` or ``"<service>.<kind>"`` (``"happyrobot"``,
    ``"oci_vision.model"``); the same string is the ``service`` of :func:`is_claimed`. Returns False
    (and logs a warning) when no durable store is reachable, so callers degrade to their lookups.
``recall(context, name) -> JsonValue | None``
    What an earlier try of the same task instance remembered under ``name``, or None.
``claim(context, service, resource_id) -> bool``
    Claim without recording (a create operator with ``durable=False``: no retry reconnects, yet no
    other task instance's lookup adopts the resource).
``is_claimed(service, resource_id) -> bool``
    Whether any task instance (of any DAG or run) remembered ``resource_id`` under ``service``. A
    fallback lookup that finds a resource by its attributes adopts it only when it is not claimed.

The create operators (``CreateAndWaitOperator``) remember the lifecycle ref under the hook's
``conn_type`` (``"happyrobot"``, ``"mlflow"``, ``"oci_aidp"``, ``"nemo"``, ``"oci_vision"``) and claim the
ref's first ``*id`` value (HappyRobot: the model id), else the whole ref; so
``is_claimed("happyrobot", model_id)`` answers for every model a HappyRobot create operator made.

Where it is kept:

- Airflow 3.3+: ``context["task_state_store"]`` (AIP-103). Its scope is (dag_id, run_id, task_id,
  map_index), so every try of one task instance reads what an earlier try wrote; a cleared and re-run
  task instance reads it too, as Airflow intends.
- Airflow 3.0 to 3.2: an Airflow Variable keyed by the task instance's idempotency key (the same key services
  get as their idempotency token), written through ``airflow.sdk``.
- Claims, on both: one Airflow Variable per resource, ``modelreg.claim.<service>.<digest of the id>``,
  holding the claiming task instance's identity. Variables outlive ``[state_store] clear_on_success``,
  which a claim must.

Only ids go here, never secrets: Variables and the task state store are readable in the UI.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow_provider_modelreg.idempotency import idempotency_key

log = logging.getLogger(__name__)

_TI_PREFIX = "modelreg.ti."
_SAME = object()  # remember()'s default claim: the value itself
_CLAIM_PREFIX = "modelreg.claim."


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def _claim_key(service: str, resource_id: Any) -> str:
    return f"{_CLAIM_PREFIX}{service}.{_digest(resource_id)}"


def _ti_key(context: Mapping[str, Any], name: str) -> str:
    return f"{_TI_PREFIX}{idempotency_key(context)}.{name}"


def _owner(context: Mapping[str, Any]) -> str:
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return json.dumps(
        {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": -1 if map_index is None else map_index,
        },
        sort_keys=True,
    )


def _store(context: Mapping[str, Any]) -> Any:
    from airflow_provider_modelreg.version_compat import task_state_store

    return task_state_store(context)  # None before Airflow 3.3 (said once): Variables instead


def _variable() -> Any:
    from airflow.sdk import Variable

    return Variable


def remember(context: Mapping[str, Any], name: str, value: Any, *, claim: Any = _SAME) -> bool:
    """Record ``value`` under ``name`` for this task instance and claim ``claim`` (default ``value``, None: none).

    False when nothing durable is reachable.
    """
    if value is None:
        raise ValueError("task_state.remember: value must not be None")
    try:
        # The claim first: a crash between the two leaves a claimed resource that the retry still finds
        # by its idempotency key or lookup, never an unclaimed one that another task could adopt.
        if claim is not None:
            _variable().set(_claim_key(name, value if claim is _SAME else claim), _owner(context))
        store = _store(context)
        if store is not None:
            store.set(name, value)
        else:
            _variable().set(_ti_key(context, name), json.dumps(value))
    except Exception as exc:  # no supervisor (a bare execute()), API server down: degrade to lookups
        log.warning("Could not record %s for crash recovery (%s); a retry will look it up instead", name, exc)
        return False
    return True


def claim(context: Mapping[str, Any], service: str, resource_id: Any) -> bool:
    """Claim ``resource_id`` under ``service`` for this task instance without recording it for retries."""
    try:
        _variable().set(_claim_key(service, resource_id), _owner(context))
    except Exception as exc:
        log.warning("Could not claim %s %s (%s)", service, resource_id, exc)
        return False
    return True


def recall(context: Mapping[str, Any], name: str) -> Any:
    """What an earlier try of this task instance remembered under ``name``, or None."""
    try:
        store = _store(context)
        if store is not None:
            return store.get(name)
        raw = _variable().get(_ti_key(context, name), default=None)
    except Exception as exc:
        log.warning("Could not read the recorded %s (%s); looking it up instead", name, exc)
        return None
    return None if raw is None else json.loads(raw)


def is_claimed(service: str, resource_id: Any) -> bool:
    """Whether any task instance remembered ``resource_id`` under ``service``."""
    try:
        return _variable().get(_claim_key(service, resource_id), default=None) is not None
    except Exception as exc:
        # Not knowing means not adopting: a lookup that cannot tell must not take another task's resource.
        log.warning("Could not read claims (%s); treating %s %s as claimed", exc, service, resource_id)
        return True
