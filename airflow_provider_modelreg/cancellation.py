"""Stopping the remote work a task owns when the task is killed: one mechanism for every service.

Each service declares its cancel once, on its :class:`~airflow_provider_modelreg.spec.LifecycleSpec`
(``cancel=CancelSpec(...)``): the request that stops the work, an extra read it needs, or why the service
has none. This module runs it, from a worker (:func:`cancel_sync`: an operator's ``on_kill``, its
execution timeout, a deferral that timed out) or from the triggerer (:func:`cancel_async`: the trigger's
``on_kill``, its own wait timeout). One plan (:func:`_plan`) drives both, so they act alike:

1. read the resource; one that is gone, or no longer in progress, has nothing to cancel (so a second
   cancel, or one racing the end of the work, sends nothing: idempotent);
2. a service without a cancel is said so in the log, plainly;
3. otherwise the cancel is sent, once per read; an answer meaning "already ended" (404/409) is fine.

Best effort, always: every error is logged as a warning and swallowed, so a cancel never masks the
failure that caused it, and it runs within :data:`CANCEL_BUDGET` seconds. Logs name the resource by its
ref (ids only) and the service's error (which never carries headers or bodies), never a credential.

Why the task stopped decides whether to cancel (:func:`cancel_reason`): Airflow sends the same signal
(SIGTERM to a task, a cancelled asyncio task to a trigger) when a user marks the task failed and when the
work merely moves (a worker's graceful shutdown; a trigger handed to another triggerer, which on Airflow
3.3.2 still calls the trigger's ``on_kill``: apache/airflow#73454). So the task instance's state is read
back from Airflow: only ``failed`` (marked failed by a user) cancels; ``deferred`` or ``running`` means
the work goes on elsewhere, ``success`` that the user accepted it, and a cleared task's next try
reconnects to the resource (task_state), so neither cancels.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, Literal

from airflow_provider_modelreg.http import ApiRequest, RetryPolicy, ServiceClient, ServiceError
from airflow_provider_modelreg.spec import LifecycleSpec, Waiter

log = logging.getLogger(__name__)

Outcome = Literal["cancelled", "not_running", "unavailable", "error"]

# Seconds a cancel may take in all: a killed task gets about 5 s before SIGKILL, a trigger's on_kill 30 s.
CANCEL_BUDGET = 4.0
# Task instance states in which a kill means "stop the work": a user marked the task failed.
CANCEL_STATES = frozenset({"failed"})

_Plan = Generator[ApiRequest, Any, Outcome]


def _plan(spec: LifecycleSpec, ref: Mapping[str, Any], why: str, logger: Any) -> _Plan:
    """The cancel as a sequence of requests: each ``yield`` sends one and receives its answer's data
    (a ServiceError is thrown in). Returns what came of it."""
    described = spec.describe(ref)
    try:
        data = yield spec.read(ref)
    except ServiceError as exc:
        if exc.status == 404:
            logger.info("%s is gone; nothing to cancel (%s)", described, why)
            return "not_running"
        raise
    obs = Waiter(spec, ref, logger).evaluate(data)
    if obs.outcome != "waiting":
        logger.info("%s is already %s; nothing to cancel (%s)", described, obs.state, why)
        return "not_running"
    cancel = spec.cancel
    if cancel is None or cancel.request is None:
        reason = cancel.unavailable if cancel is not None else None
        logger.warning(
            "%s is %s and keeps running (%s): %s",
            described,
            obs.state,
            why,
            reason or f"no way to cancel a {spec.noun} is known",
        )
        return "unavailable"
    found = None
    if cancel.find is not None and (lookup := cancel.find(ref, obs.resource)) is not None:
        found = yield lookup
    request = cancel.request(ref, obs.resource, found)
    if request is None:
        logger.info("%s is %s, with nothing to cancel (%s)", described, obs.state, why)
        return "not_running"
    try:
        yield request
    except ServiceError as exc:
        if exc.status in cancel.already_done:
            logger.info("%s had already ended when cancelled (%s): %s", described, why, exc)
            return "not_running"
        raise
    logger.warning("%s was %s: %s (%s)", described, obs.state, cancel.effect, why)
    return "cancelled"


def _bounded(client: ServiceClient) -> ServiceClient:
    """The same client (same pool, same auth) with a retry budget that fits inside a kill's grace time."""
    bounded = copy.copy(client)
    bounded.retry = RetryPolicy(max_attempts=2, base_delay=0.5, max_delay=1.0, total_budget=CANCEL_BUDGET / 2)
    return bounded


def cancel_sync(
    client: ServiceClient, spec: LifecycleSpec, ref: Mapping[str, Any], *, why: str, logger: Any = None
) -> Outcome:
    """Stop ``ref``'s remote work now, from a worker. Never raises."""
    logger = logger or log
    plan = _plan(spec, ref, why, logger)
    client = _bounded(client)
    deadline = time.monotonic() + CANCEL_BUDGET
    try:
        request = next(plan)
        while True:
            if time.monotonic() > deadline:
                logger.warning("Cancelling %s took longer than %.0fs; left as it is", spec.describe(ref), CANCEL_BUDGET)
                return "error"
            try:
                data = client.request(request).data
            except ServiceError as exc:
                request = plan.throw(exc)
            else:
                request = plan.send(data)
    except StopIteration as stop:
        return stop.value
    except Exception as exc:  # best effort: the failure that got us here is what the task reports
        logger.warning("Could not cancel %s (%s): %s", spec.describe(ref), why, _safe(exc))
        return "error"


async def cancel_async(
    client: ServiceClient, spec: LifecycleSpec, ref: Mapping[str, Any], *, why: str, logger: Any = None
) -> Outcome:
    """Stop ``ref``'s remote work now, from the triggerer's event loop. Never raises (but a cancellation
    of the calling asyncio task still propagates)."""
    logger = logger or log

    async def run() -> Outcome:
        plan = _plan(spec, ref, why, logger)
        bounded = _bounded(client)
        try:
            request = next(plan)
            while True:
                try:
                    data = (await bounded.arequest(request)).data
                except ServiceError as exc:
                    request = plan.throw(exc)
                else:
                    request = plan.send(data)
        except StopIteration as stop:
            return stop.value

    try:
        return await asyncio.wait_for(run(), timeout=CANCEL_BUDGET)
    except TimeoutError:
        logger.warning("Cancelling %s took longer than %.0fs; left as it is", spec.describe(ref), CANCEL_BUDGET)
    except Exception as exc:
        logger.warning("Could not cancel %s (%s): %s", spec.describe(ref), why, _safe(exc))
    return "error"


# -- a trigger's on_kill, run to its end -----------------------------------------------------------------
class TriggerOnKill:
    """A trigger's on_kill work (the state question, then the cancel), run to its end although the
    triggerer cancels the trigger again and again meanwhile.

    Airflow 3.3's triggerer repeats a user action's cancel at every turn of its loop (about once a second)
    until the trigger has finished: its supervisor answers every state sync with the whole set of triggers
    being cancelled, and the runner cancels each one's asyncio task again. A cancel taking longer than one
    turn (a loaded triggerer's state question takes seconds) was interrupted by the next: the triggerer
    swallows a CancelledError inside on_kill, so the training ran on and nothing was logged (issue 28).
    So the work runs in a task of its own, which those cancels never reach; :meth:`finish` waits for it and
    absorbs them. The work is bounded (``state_read_budget`` plus :data:`CANCEL_BUDGET`), so waiting ends.
    On Python 3.11 the triggerer's ``wait_for`` may still stop on_kill's waiting: the trigger keeps this
    object, and its cleanup calls :meth:`finish` again before giving its client back.
    """

    __slots__ = ("described", "logger", "task")

    def __init__(self, work: Coroutine[Any, Any, None], described: str, logger: Any) -> None:
        self.task: asyncio.Future[None] = asyncio.ensure_future(work)
        self.described = described
        self.logger = logger

    async def finish(self) -> None:
        """Wait for the work to end, absorbing the triggerer's repeated cancels (at most its budget)."""
        task, logger = self.task, self.logger
        loop = asyncio.get_running_loop()
        deadline = loop.time() + state_read_budget() + CANCEL_BUDGET + 1.0
        while not task.done():
            left = deadline - loop.time()
            if left <= 0:  # not expected (the work is bounded): say so rather than wait on
                task.cancel()
                logger.warning("Cancelling %s did not end in time; it may still be running", self.described)
                return
            try:
                await asyncio.wait({task}, timeout=left)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and hasattr(current, "uncancel"):  # Python 3.11+ counts cancels
                    current.uncancel()
                logger.debug(
                    "The triggerer cancelled the trigger again while it stops %s; finishing that first", self.described
                )
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("Could not cancel %s: %s", self.described, _safe(exc))


def _safe(exc: BaseException) -> str:
    # ServiceError's text names method, path, status, code, message and request ids, never headers or
    # bodies; anything else is reduced to its type so no library's message can carry a credential.
    return str(exc) if isinstance(exc, ServiceError) else type(exc).__name__


# -- why the task stopped -------------------------------------------------------------------------------
def task_instance_state(dag_id: str, task_id: str, run_id: str, map_index: int | None) -> str | None:
    """The task instance's state as Airflow's API server has it now (from a task or a trigger process)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    index = -1 if map_index is None else map_index
    states = RuntimeTaskInstance.get_task_states(dag_id=dag_id, map_index=index, task_ids=[task_id], run_ids=[run_id])
    key = task_id if index < 0 else f"{task_id}_{index}"
    state = (states.get(run_id) or {}).get(key)
    return None if state is None else str(getattr(state, "value", state))


def _decide(ti: Any, state: str | None, logger: Any) -> str | None:
    if state in CANCEL_STATES:
        return f"the task was marked {state}"
    logger.info(
        "Not cancelling the remote work: the task instance is %s (%s)",
        state,
        "it moved to another worker or triggerer" if state in ("running", "deferred", "queued") else "not failed",
    )
    return None


def cancel_reason(ti: Any, logger: Any = None) -> str | None:
    """Why the work should stop ("the task was marked failed"), or None when it must go on (logged, with
    the reason). From a task process (its supervisor answers)."""
    logger = logger or log
    if ti is None:
        logger.info("Not cancelling: no task instance to ask why the task stopped")
        return None
    try:
        state = task_instance_state(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))
    except Exception as exc:  # not knowing why means not cancelling: the work may have only moved
        logger.warning("Not cancelling: could not read the task instance's state (%s)", type(exc).__name__)
        return None
    return _decide(ti, state, logger)


def state_read_budget() -> float:
    """Seconds the triggerer may take to answer the task instance's state: what Airflow's bound on a
    trigger's on_kill (``[triggerer] on_kill_timeout``, 30 s by default) leaves after the cancel itself.

    The triggerer's first such question builds Airflow's in-process Execution API in its supervisor, which
    takes tens of seconds on a loaded machine; a deployment that sees "did not say within" in its trigger
    logs raises ``on_kill_timeout``."""
    from airflow_provider_modelreg.version_compat import conf

    return max(1.0, conf.getfloat("triggerer", "on_kill_timeout", fallback=30.0) - CANCEL_BUDGET - 2.0)


async def acancel_reason(ti: Any, logger: Any = None) -> str | None:
    """:func:`cancel_reason` from a trigger, on the triggerer's event loop: the question goes through the
    trigger runner's own async channel to its supervisor (no thread, no blocking of the loop)."""
    logger = logger or log
    if ti is None:
        logger.info("Not cancelling: no task instance to ask why the task stopped")
        return None
    try:
        budget = state_read_budget()
        state = await asyncio.wait_for(_atask_instance_state(ti), timeout=budget)
    except TimeoutError:
        logger.warning("Not cancelling: Airflow did not say within %.0fs whether the task was marked failed", budget)
        return None
    except Exception as exc:
        logger.warning("Not cancelling: could not read the task instance's state (%s)", type(exc).__name__)
        return None
    return _decide(ti, state, logger)


async def _atask_instance_state(ti: Any) -> str | None:
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetTaskStates

    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    asend = getattr(comms, "asend", None)
    if asend is None:  # not in a triggerer (a test's event loop): the synchronous question
        return await asyncio.to_thread(
            task_instance_state, ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1)
        )
    index = getattr(ti, "map_index", -1)
    index = -1 if index is None else index
    answer = await asend(GetTaskStates(dag_id=ti.dag_id, map_index=index, task_ids=[ti.task_id], run_ids=[ti.run_id]))
    states = getattr(answer, "task_states", None) or {}
    key = ti.task_id if index < 0 else f"{ti.task_id}_{index}"
    state = (states.get(ti.run_id) or {}).get(key)
    return None if state is None else str(getattr(state, "value", state))
