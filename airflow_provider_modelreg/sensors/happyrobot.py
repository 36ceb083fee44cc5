"""HappyRobot sensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.happyrobot import ModelRef
from airflow_provider_modelreg.sensors.base import LifecycleSensor
from airflow_provider_modelreg.version_compat import AirflowFailException


class HappyRobotModelSensor(LifecycleSensor):
    """Wait until a HappyRobot model is ``active``; ``failed`` fails the task with the service's reason.

    :param model_id: id of the model (templated, e.g. from the create operator's XCom).
    :param conn_id: a ``happyrobot`` connection.
    :param deferrable: wait in the triggerer.
    """

    hook_class = HappyRobotHook
    lifecycle = MODEL_LIFECYCLE
    template_fields: Sequence[str] = ("model_id", "conn_id")
    ref_fields = ("model_id",)

    def __init__(self, *, model_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id

    def resource_ref(self) -> dict[str, Any]:
        # A bad id cannot get better on a retry: fail at once, nothing sent.
        try:
            return validate_request(ModelRef, {"model_id": self.model_id}).wire()
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
