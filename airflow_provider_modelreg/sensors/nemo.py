"""NVIDIA NeMo Platform sensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE, NemoModelsHook
from airflow_provider_modelreg.models.base import InvalidRequest
from airflow_provider_modelreg.models.nemo import ModelEntityRef, validate_names
from airflow_provider_modelreg.operators.nemo import redact_entity
from airflow_provider_modelreg.sensors.base import LifecycleSensor
from airflow_provider_modelreg.version_compat import AirflowFailException


class NemoModelSpecSensor(LifecycleSensor):
    """Wait until the NeMo Platform has filled a model entity's ``spec`` (generated from its fileset).

    The entity has no failure state: its spec-analysis job on the jobs API is watched (the spec,
    ``MODEL_SPEC_LIFECYCLE``, carries it, so the sync sensor, the deferred one, the triggerer-started one and the
    operators' waits behave alike), and one that ends ``error`` or ``cancelled`` fails the sensor at once with
    the job's message. While the entity's newest job runs (after a PATCH to a new fileset) the sensor waits for
    it, although the entity still answers the previous fileset's spec: it returns the spec of the fileset the
    entity names. An entity without a fileset waits (state ``AWAITING_FILESET``) until someone sets one.
    Returns the entity (``api_endpoint.api_key`` redacted).

    :param name: name of the model entity (templated, e.g. from the create operator's XCom).
    :param workspace: its workspace (default: the connection's ``workspace`` extra, else ``default``).
    :param conn_id: a ``nemo_platform`` connection (default ``nemo_default``).
    :param deferrable: wait in the triggerer.
    """

    hook_class = NemoModelsHook
    lifecycle = MODEL_SPEC_LIFECYCLE
    template_fields: Sequence[str] = ("name", "workspace", "conn_id")
    # workspace first, as every NeMo ref; start_from_trigger needs ``workspace`` given (its default is the
    # connection's, which only a worker reads).
    ref_fields = ("workspace", "name")

    def __init__(self, *, name: str, workspace: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.workspace = workspace
        if self.start_from_trigger and not workspace:
            raise ValueError("NemoModelSpecSensor: start_from_trigger needs workspace (else the connection's is used)")

    def resource_ref(self) -> dict[str, Any]:
        workspace = self.workspace or self.hook.default_workspace  # type: ignore[attr-defined]
        # A name the platform refuses cannot get better on a retry: fail at once, nothing sent.
        try:
            ref = {"workspace": workspace, "name": self.name}
            validate_names(ModelEntityRef, ref, lambda: self.hook.name_context)  # type: ignore[attr-defined]
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from None
        return {"workspace": workspace, "name": self.name}

    def to_xcom(self, resource: Any) -> Any:
        return redact_entity(resource)
