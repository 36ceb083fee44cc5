"""OCI AI Vision operators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.oci_vision import MODEL_LIFECYCLE, OCIVisionHook
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.idempotency import idempotency_key
from airflow_provider_modelreg.lineage import ModelLineage, oci_dataset, service_dataset, unique
from airflow_provider_modelreg.links.oci_vision import OCIVisionModelLink
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.oci_vision import CreateModelDetails
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator
from airflow_provider_modelreg.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


class OCIVisionCreateModelOperator(CreateAndWaitOperator):
    """Train a custom OCI AI Vision model; optionally wait until it is ``ACTIVE``.

    Returns the model (plain JSON, camelCase as OCI sends it) with its training metrics once ACTIVE:
    ``precision``, ``recall``, ``averagePrecision``, ``confidenceThreshold``, ``testImageCount``,
    ``totalImageCount``, ``trainedDurationInHours`` and ``metrics``. FAILED, DELETING or DELETED fail the
    task at once (no retry) with ``lifecycleDetails`` and the work request's errors.

    The create carries an ``opc-retry-token`` derived from the task instance (DAG, task, run, map index),
    so a resent request or a retried task gets the first model back within OCI's 24-hour token life.
    Dataset arguments are dicts with ``datasetType`` (``DATA_SCIENCE_LABELING`` with ``dataset_id``, or
    ``OBJECT_STORAGE`` with ``namespace_name``, ``bucket_name``, ``object_name``); keys may be snake_case
    or camelCase.

    :param compartment_id: OCID of the compartment of the model.
    :param project_id: OCID of the Vision project that contains the model.
    :param model_type: ``IMAGE_CLASSIFICATION`` or ``OBJECT_DETECTION``.
    :param training_dataset: the training dataset (required).
    :param testing_dataset: the testing dataset (optional).
    :param validation_dataset: the validation dataset (optional).
    :param display_name: name of the model (1..255 characters; not unique).
    :param description: description of the model (at most 400 characters).
    :param model_version: version label of the model.
    :param is_quick_mode: train quickly, with few passes over the data (for experiments).
    :param max_training_duration_in_hours: upper bound of the training time, in hours (> 0).
    :param freeform_tags: free-form tags (key 1..100, value at most 256 characters, at most 64 tags).
    :param defined_tags: defined tags, ``{namespace: {key: value}}``.
    :param conn_id: an ``oci`` connection (default ``oci_default``).
    :param wait_for_completion: wait until the model is ``ACTIVE`` (default true).
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between status reads.
    :param wait_timeout: seconds before the wait fails.
    """

    hook_class = OCIVisionHook
    lifecycle = MODEL_LIFECYCLE
    operator_extra_links = (OCIVisionModelLink(),)
    template_fields: Sequence[str] = (
        "compartment_id",
        "project_id",
        "model_type",
        "training_dataset",
        "testing_dataset",
        "validation_dataset",
        "display_name",
        "description",
        "model_version",
        "is_quick_mode",
        "max_training_duration_in_hours",
        "freeform_tags",
        "defined_tags",
        "conn_id",
    )

    def __init__(
        self,
        *,
        compartment_id: str,
        project_id: str,
        model_type: str,
        training_dataset: dict[str, Any],
        testing_dataset: dict[str, Any] | None = None,
        validation_dataset: dict[str, Any] | None = None,
        display_name: str | None = None,
        description: str | None = None,
        model_version: str | None = None,
        is_quick_mode: bool | None = None,
        max_training_duration_in_hours: float | None = None,
        freeform_tags: dict[str, str] | None = None,
        defined_tags: dict[str, dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.compartment_id = compartment_id
        self.project_id = project_id
        self.model_type = model_type
        self.training_dataset = training_dataset
        self.testing_dataset = testing_dataset
        self.validation_dataset = validation_dataset
        self.display_name = display_name
        self.description = description
        self.model_version = model_version
        self.is_quick_mode = is_quick_mode
        self.max_training_duration_in_hours = max_training_duration_in_hours
        self.freeform_tags = freeform_tags
        self.defined_tags = defined_tags
        self._work_request_id: str | None = None

    def build_request(self, context: Context) -> CreateModelDetails:
        fields = {
            "compartment_id": self.compartment_id,
            "project_id": self.project_id,
            "model_type": self.model_type,
            "training_dataset": self.training_dataset,
            "testing_dataset": self.testing_dataset,
            "validation_dataset": self.validation_dataset,
            "display_name": self.display_name,
            "description": self.description,
            "model_version": self.model_version,
            "is_quick_mode": self.is_quick_mode,
            "max_training_duration_in_hours": self.max_training_duration_in_hours,
            "freeform_tags": self.freeform_tags,
            "defined_tags": self.defined_tags,
        }
        # Unset optional arguments stay out of the body (None would be refused for typed fields).
        return validate_request(CreateModelDetails, {k: v for k, v in fields.items() if v is not None})

    def create(self, context: Context, request: CreateModelDetails) -> dict[str, Any]:
        hook: OCIVisionHook = self.hook  # type: ignore[assignment]
        try:
            created = hook.create_model(request, retry_token=idempotency_key(context))
        except ServiceError as exc:
            if exc.code == "InvalidatedRetryToken":
                # Same task instance, other body within 24 h: resending can never succeed.
                raise AirflowFailException(
                    f"{exc}. This task instance already created a model from a different request in the last "
                    "24 hours (its opc-retry-token is derived from the task instance); start a new DAG run "
                    "to train another model."
                ) from None
            raise
        model = created.model
        self._work_request_id = created.work_request_id
        OCIVisionModelLink.persist(
            context, model_id=model["id"], region=hook.region, work_request_id=created.work_request_id
        )
        self.log.info(
            "OCI Vision model %s (%s), work request %s", model["id"], request.display_name, created.work_request_id
        )
        return model

    def persist_links(self, context: Context, resource: dict[str, Any]) -> None:
        hook: OCIVisionHook = self.hook  # type: ignore[assignment]
        OCIVisionModelLink.persist(context, model_id=resource["id"], region=hook.region)

    def lineage(self, resource: dict[str, Any]) -> ModelLineage:
        # The datasets as the model names them (camelCase), else as given to the task.
        datasets = [
            oci_dataset(resource.get(camel) or getattr(self, snake))
            for snake, camel in (
                ("training_dataset", "trainingDataset"),
                ("testing_dataset", "testingDataset"),
                ("validation_dataset", "validationDataset"),
            )
        ]
        return ModelLineage(
            output=service_dataset(self.hook.client.base_url, f"models/{resource['id']}"),
            service="oci_vision",
            resource_id=str(resource["id"]),
            version=resource.get("modelVersion"),
            state=self.lifecycle.state(resource),
            inputs=unique(datasets),
        )

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        ref = {"model_id": resource["id"]}
        if self._work_request_id:
            ref["work_request_id"] = self._work_request_id
        return ref
