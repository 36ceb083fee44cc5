"""NVIDIA NeMo Platform sensors."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue

from airflow_provider_modelreg.hooks.nemo import (
    MODEL_SPEC_LIFECYCLE,
    SPEC_JOB_LIFECYCLE,
    SPEC_JOB_RUNNING,
    NemoModelsHook,
    spec_job_failure,
)
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.lifecycle import LifecycleTrigger, raise_for_event
from airflow_provider_modelreg.models.base import InvalidRequest
from airflow_provider_modelreg.models.nemo import ModelEntityRef, validate_names
from airflow_provider_modelreg.operators.nemo import redact_entity
from airflow_provider_modelreg.sensors.base import LifecycleSensor
from airflow_provider_modelreg.version_compat import AirflowFailException, AirflowSensorTimeout

if TYPE_CHECKING:
    from airflow.sdk import Context


class NemoModelSpecSensor(LifecycleSensor):
    """Wait until the NeMo Platform has filled a model entity's ``spec`` (generated from its fileset).

    The entity has no failure state: its spec-analysis job on the jobs API is watched, and one that ends
    ``error`` fails the sensor at once with the job's message. While the entity's newest job runs (after a PATCH
    to a new fileset) the sensor waits for it, although the entity still answers the previous fileset's spec: it
    returns the spec of the fileset the entity names. An entity without a fileset waits (state
    ``AWAITING_FILESET``) until someone sets one. Returns the entity (``api_endpoint.api_key`` redacted).

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

    def _spec_job_still_running(self, ref: dict[str, Any]) -> Mapping[str, Any] | None:
        """The entity's newest spec-analysis job while it runs (None when there is none or it completed).

        After a PATCH to a new fileset the platform keeps answering the previous fileset's spec until the new
        job ends, so the spec is the asked-about fileset's only once its job has completed; a job that ended
        ``error`` or ``cancelled`` fails the wait at once with its message (the spec shown is a stale one)."""
        job = self.hook.newest_spec_job(ref["workspace"], ref["name"])  # type: ignore[attr-defined]
        if job is None:
            return None
        if job.get("status") in SPEC_JOB_RUNNING:
            return job
        if failed := spec_job_failure(ref, {"data": [job]}):
            raise AirflowFailException(f"{self.lifecycle.describe(ref)} ended {failed[0]}: {failed[1]}")
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        ref = self.resource_ref()
        try:
            job = self._spec_job_still_running(ref)
        except ServiceError as exc:
            if not exc.retryable:
                raise
            # As the entity's own read (LifecycleSensor.poke): a transient error outlasting the per-request
            # retries pokes again, until the sensor's timeout.
            self.log.warning(
                "%s: its spec-analysis jobs could not be read (%s); next check in %ss",
                self.lifecycle.describe(ref),
                exc,
                self.poke_interval,
            )
            return PokeReturnValue(is_done=False)
        if job is not None:
            self.log.info(
                "%s: its spec-analysis job %s is %s; until it ends, the spec answered is not its fileset's",
                self.lifecycle.describe(ref),
                job.get("name"),
                job.get("status"),
            )
            return PokeReturnValue(is_done=False)
        return super().poke(context)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            ref = self.resource_ref()
            if (job := self._spec_job_still_running(ref)) is not None:
                # Wait in the triggerer for that job first; execute_complete then reads the entity.
                self.defer(
                    trigger=LifecycleTrigger(
                        spec=SPEC_JOB_LIFECYCLE.key,
                        conn_id=self.conn_id,
                        ref={"workspace": ref["workspace"], "name": ref["name"], "job": str(job["name"])},
                        poll_interval=self.poke_interval,
                        end_time=time.time() + self.timeout,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self.timeout),
                )
        return super().execute(context)

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        if event is not None and "job" in (event.get("ref") or {}):
            # The spec job ended completed (a failure raises here with its message): the entity now answers
            # the new fileset's spec, or defers again while it has none.
            raise_for_event(event, timeout_error=AirflowSensorTimeout)
            return self.execute(context)
        return super().execute_complete(context, event)

    def to_xcom(self, resource: Any) -> Any:
        return redact_entity(resource)
