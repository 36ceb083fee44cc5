"""What differs between the Airflow 3 lines the provider supports (3.0, 3.1, 3.2, 3.3): the one module that knows.

The official providers' pattern (``AIRFLOW_V_3_1_PLUS`` and friends, names imported from where each line
keeps them); the rest of the package imports from here and never compares versions itself.

Where a line lacks a feature the provider uses, the provider degrades and says so once per process, with the
feature's name and the Airflow version that brings it (:func:`note_unavailable`), never with a traceback:

===========================  =====  ===========================================================================
feature                      since  older lines
===========================  =====  ===========================================================================
task state store (AIP-103)   3.3    the created resource's record lives in an Airflow Variable per task instance
trigger ``on_kill``          3.3    a deferred wait marked failed stops waiting; its remote work is not stopped
asset state store            3.3    the registry watch's watermark lives in the triggerer's memory
``start_from_trigger``       3.3    the sensor starts on a worker, reads once and defers (``deferrable``)
human-in-the-loop operators  3.1    the approval example DAG is not offered (it needs ``HITLOperator``)
``BaseHook.aget_connection`` 3.1    triggers read connections through ``sync_to_async(get_connection)``
===========================  =====  ===========================================================================

Imports here stay light: nothing beyond what ``airflow.sdk`` itself loads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from packaging.version import Version

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger(__name__)


def _airflow_version() -> Version:
    from airflow import __version__

    return Version(Version(__version__).base_version)  # 3.1.0rc1 and 3.1.0.dev0 count as 3.1.0


AIRFLOW_VERSION = _airflow_version()
AIRFLOW_V_3_1_PLUS = Version("3.1.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_2_PLUS = Version("3.2.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= AIRFLOW_VERSION

# -- names that moved into airflow.sdk after 3.0 ------------------------------------------------------------
if AIRFLOW_V_3_2_PLUS:  # 3.2 moved the task-facing exceptions and conf into the Task SDK
    from airflow.sdk import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowTaskTimeout,
        TaskDeferralTimeout,
        TaskDeferred,
    )
else:
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowTaskTimeout,
        TaskDeferralTimeout,
        TaskDeferred,
    )

if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import BaseHook
else:
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

# -- what each line's connection form reads ------------------------------------------------------------------
# Airflow 3.2 builds the form from the provider info's declarative ``conn-fields`` / ``ui-field-behaviour``
# (ProvidersManager._load_ui_metadata) and skips a hook's form methods when they are present. Airflow 3.0 and
# 3.1 read only the hook class's own ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` (looked up in
# the class's ``__dict__``, so each connection type's hook must define them, not inherit them).
FORM_FROM_PROVIDER_INFO = AIRFLOW_V_3_2_PLUS


def write_dag_to_db(dag: Any) -> None:
    """Write ``dag`` to the metadata DB as the DAG processor would (what ``dag.test()`` of a DAG built in a test
    needs): ``DagBag`` and ``sync_bag_to_db`` live in ``airflow.dag_processing.dagbag`` from 3.2, in
    ``airflow.models.dagbag`` on 3.1; 3.0 has ``DagBag.sync_to_db``."""
    import os

    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag = dag_bag(dag_folder=os.devnull)
    bag.bag_dag(dag)
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import sync_bag_to_db
    elif AIRFLOW_V_3_1_PLUS:
        from airflow.models.dagbag import sync_bag_to_db  # type: ignore[no-redef]
    else:
        # 3.0's DagBag.sync_to_db reads the path a DAG processor would have set for a file's DAGs.
        if getattr(dag, "relative_fileloc", None) is None:
            dag.relative_fileloc = os.path.basename(dag.fileloc)
        bag.sync_to_db("dags-folder", None)
        return
    sync_bag_to_db(bag, "dags-folder", None)


def quiet_dag_test_debug_logs() -> None:
    """Airflow 3.0's ``dag.test()`` leaves structlog unconfigured: its in-process supervisor's debug lines
    (``Sending request msg=MaskSecret(value=...)``: the very values being masked) and rich tracebacks with
    every frame's local variables reach the console. Here: INFO and up, tracebacks without locals, as a task's
    own log has them; a process that configured structlog itself is left alone."""
    if AIRFLOW_V_3_1_PLUS:
        return
    import structlog

    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )


def dag_bag(*args: Any, **kwargs: Any) -> Any:
    """A ``DagBag`` (``airflow.dag_processing.dagbag`` from 3.2, ``airflow.models.dagbag`` before)."""
    if AIRFLOW_V_3_2_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(*args, **kwargs)


# -- degrading, said once ------------------------------------------------------------------------------------
_noted: set[str] = set()


def note_unavailable(feature: str, since: str, instead: str, logger: logging.Logger | None = None) -> None:
    """Log once per process that ``feature`` needs Airflow ``since`` and what the provider does ``instead``."""
    if feature in _noted:
        return
    _noted.add(feature)
    (logger or log).warning(
        "%s needs Airflow %s or later (this is Airflow %s): %s", feature, since, AIRFLOW_VERSION, instead
    )


def task_state_store(context: Any) -> Any:
    """The task instance's state store (Airflow 3.3, AIP-103), or None (said once) on older lines."""
    store = context.get("task_state_store")
    if store is None and not AIRFLOW_V_3_3_PLUS:
        note_unavailable(
            "The task state store",
            "3.3",
            "what a task created is recorded in an Airflow Variable per task instance instead",
        )
    return store


def trigger_on_kill_supported() -> bool:
    """Whether the triggerer calls a trigger's ``on_kill`` when its task is marked failed (Airflow 3.3)."""
    from airflow.triggers.base import BaseTrigger

    return hasattr(BaseTrigger, "on_kill")


def note_if_no_trigger_on_kill(logger: logging.Logger | None = None) -> None:
    """Before a deferred wait that should cancel on kill: say once when this Airflow cannot."""
    if not trigger_on_kill_supported():
        note_unavailable(
            "Cancelling the remote work when a deferred task is marked failed (the trigger's on_kill)",
            "3.3",
            "the task stops waiting but the remote work goes on; timeouts and synchronous waits still cancel it",
            logger,
        )


def note_if_no_start_from_trigger(logger: logging.Logger | None = None) -> None:
    """A sensor set to ``start_from_trigger`` runs on a worker: before 3.3 the scheduler ignores the setting
    (its dagrun.py leaves the check commented out), so the sensor checks once and defers as ``deferrable``."""
    if not AIRFLOW_V_3_3_PLUS:
        note_unavailable(
            "Starting a sensor in the triggerer (start_from_trigger)",
            "3.3",
            "the sensor starts on a worker, reads once and defers as deferrable=True",
            logger,
        )


def asset_state_store(trigger: Any) -> Any:
    """The event trigger's asset state store (Airflow 3.3), or None (said once) on older lines."""
    store = getattr(trigger, "asset_state_store", None)
    if store is None and not AIRFLOW_V_3_3_PLUS:
        note_unavailable(
            "The asset state store",
            "3.3",
            "the registry watch keeps its watermark in the triggerer's memory (a restarted triggerer starts again)",
        )
    return store


def hitl_approval_operator() -> Any:
    """The standard provider's ``ApprovalOperator`` (human-in-the-loop, Airflow 3.1), or None (said once)."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.providers.standard.operators.hitl import ApprovalOperator

        return ApprovalOperator
    note_unavailable(
        "Human-in-the-loop approval (HITLOperator)",
        "3.1",
        "the approve_and_promote example DAG is not defined (nothing is promoted without a person's answer)",
    )
    return None


def hitl_response_timeout(operator_class: Any, timeout: Any) -> dict[str, Any]:
    """The keyword that bounds a person's answer: ``response_timeout`` in the standard provider's newer HITL
    operators, ``execution_timeout`` (read as that bound) in earlier ones such as 1.12.1, Airflow 3.1.8's."""
    import inspect

    for cls in operator_class.__mro__:
        if "response_timeout" in inspect.signature(cls.__init__).parameters:
            return {"response_timeout": timeout}
    return {"execution_timeout": timeout}


async def aget_connection(conn_id: str) -> Connection:
    """The connection, read without blocking the event loop (BaseHook.aget_connection from Airflow 3.1)."""
    if hasattr(BaseHook, "aget_connection"):
        return await BaseHook.aget_connection(conn_id)
    from asgiref.sync import sync_to_async

    return await sync_to_async(BaseHook.get_connection)(conn_id)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "FORM_FROM_PROVIDER_INFO",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowTaskTimeout",
    "BaseHook",
    "TaskDeferralTimeout",
    "TaskDeferred",
    "aget_connection",
    "asset_state_store",
    "conf",
    "dag_bag",
    "hitl_approval_operator",
    "hitl_response_timeout",
    "note_if_no_start_from_trigger",
    "note_if_no_trigger_on_kill",
    "note_unavailable",
    "quiet_dag_test_debug_logs",
    "task_state_store",
    "trigger_on_kill_supported",
    "write_dag_to_db",
]
