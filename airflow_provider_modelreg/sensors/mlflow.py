"""MLflow sensors: wait for a model version to be READY, or for a run to end. Either flavour: the
connection's type (``mlflow`` or ``oci_aidp``) picks it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow_provider_modelreg.hooks.mlflow import MODEL_VERSION_LIFECYCLE, RUN_LIFECYCLE, MlflowHook, mlflow_hook
from airflow_provider_modelreg.sensors.base import LifecycleSensor


class MlflowModelVersionSensor(LifecycleSensor):
    """Wait until a model version is ``READY``; ``FAILED_REGISTRATION`` fails the task with its
    ``status_message``. Returns the model version.

    :param name: registered model name (templated).
    :param version: version number (templated, e.g. from the create operator's XCom).
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    :param deferrable: wait in the triggerer.
    """

    hook_class = MlflowHook
    lifecycle = MODEL_VERSION_LIFECYCLE
    template_fields: Sequence[str] = ("name", "version", "conn_id")

    def __init__(self, *, name: str, version: str | int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.version = version

    @cached_property
    def hook(self) -> MlflowHook:
        return mlflow_hook(self.conn_id)

    def resource_ref(self) -> dict[str, Any]:
        return {"api": self.hook.registry_api, "name": self.name, "version": str(self.version)}


class MlflowRunSensor(LifecycleSensor):
    """Wait until a run someone else drives ends: ``FINISHED`` succeeds; ``FAILED``, ``KILLED`` and
    ``INTERNAL_ERROR`` fail the task. Returns the run (``info`` and ``data``).

    :param run_id: id of the run (templated).
    :param conn_id: an ``mlflow`` or ``oci_aidp`` connection (default ``mlflow_default``).
    :param deferrable: wait in the triggerer.
    """

    hook_class = MlflowHook
    lifecycle = RUN_LIFECYCLE
    template_fields: Sequence[str] = ("run_id", "conn_id")

    def __init__(self, *, run_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id

    @cached_property
    def hook(self) -> MlflowHook:
        return mlflow_hook(self.conn_id)

    def resource_ref(self) -> dict[str, Any]:
        return {"api": self.hook.tracking_api, "run_id": str(self.run_id)}
