"""OCI AI Vision sensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE, OCIVisionHook
from airflow_provider_modelreg.sensors.base import LifecycleSensor


class OCIVisionModelSensor(LifecycleSensor):
    """Wait until an OCI Vision model is ``ACTIVE``; FAILED, DELETING or DELETED fail the task with
    ``lifecycleDetails`` (and, when ``work_request_id`` is given, the work request's errors).

    Returns the model (plain JSON) with its training metrics.

    :param model_id: OCID of the model (templated, e.g. from the create operator's XCom).
    :param work_request_id: OCID of the work request that trains it (optional; its errors explain a failure).
    :param conn_id: an ``oci`` connection (default ``oci_default``).
    :param deferrable: wait in the triggerer.
    """

    hook_class = OCIVisionHook
    lifecycle = MODEL_LIFECYCLE
    template_fields: Sequence[str] = ("model_id", "work_request_id", "conn_id")
    ref_fields = ("model_id", "work_request_id")

    def __init__(self, *, model_id: str, work_request_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.work_request_id = work_request_id

    def resource_ref(self) -> dict[str, Any]:
        ref = {"model_id": self.model_id}
        if self.work_request_id:
            ref["work_request_id"] = self.work_request_id
        return ref
