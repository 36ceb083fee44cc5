"""HappyRobot operators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
from airflow_provider_modelreg.idempotency import create_once, idempotency_key
from airflow_provider_modelreg.lineage import ModelLineage, service_dataset, unique
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

# How many hex characters of the task instance's idempotency key the model's name carries: 64 bits, so two
# task instances' names collide with odds of 2**-64.
NAME_KEY_CHARS = 16


def name_for_task_instance(name: str, context: Context) -> str:
    """The name sent to HappyRobot: the user's name and this task instance's idempotency key.

    HappyRobot has no idempotency key and its create body no free-form field, so the name is the one thing a
    retry can find its own model by (HappyRobot lists models by use case; a name filter is not documented).
    The key is the same for every try of one task instance and differs per task instance and per
    ``on_failed_resource="recreate"`` generation (:func:`~airflow_provider_modelreg.idempotency.idempotency_key`).
    """
    return f"{name} [{idempotency_key(context)[:NAME_KEY_CHARS]}]"


class HappyRobotCreateModelOperator(CreateAndWaitOperator):
    """Clone a HappyRobot model and train it; optionally wait until it is ``active``.

    A model belongs to the task instance that created it. HappyRobot has no idempotency key, so the model's
    name carries the task instance's: ``name`` is sent as ``"<name> [<16 hex characters of the key>]"``
    (the same on every try, another for every other task instance). Before every create, and on every try,
    the operator lists the use case's models and adopts the one with exactly that name and source model;
    its id is also recorded durably the moment the create answers, and a retry reconnects to it. This
    needs no durable record, no clock and no claim: a worker killed at any moment after HappyRobot stored
    the model leaves a model its retry finds.

    What remains (the API offers nothing to close it): a create HappyRobot has not yet stored when the
    retry lists (a worker killed while its POST was still in flight, and the retry listing before the
    service finished it: it must outlast the task's ``retry_delay``), and overlapping tries of one task
    instance (a zombie and its retry both listing before either create lands) make two models. When
    several models carry the key, the oldest is adopted and the others are named in a warning (HappyRobot
    cannot delete them).

    :param use_case_id: use case of the model.
    :param name: name of the new model.
    :param from_model_id: id of the model to clone (24 characters).
    :param train_sample_ids: ids of the training samples (at least one).
    :param test_sample_ids: ids of the testing samples.
    :param explain_tools: enable explain tools (default true).
    :param conn_id: a ``happyrobot`` connection.
    :param wait_for_completion: wait until the model is ``active`` (``failed`` fails the task).
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between status reads.
    :param wait_timeout: seconds before the wait fails.
    """

    hook_class = HappyRobotHook
    lifecycle = MODEL_LIFECYCLE
    template_fields: Sequence[str] = (
        "use_case_id",
        "name",
        "from_model_id",
        "train_sample_ids",
        "test_sample_ids",
        "explain_tools",
        "conn_id",
    )

    def __init__(
        self,
        *,
        use_case_id: str,
        name: str,
        from_model_id: str,
        train_sample_ids: list[str] | str,
        test_sample_ids: list[str] | str,
        explain_tools: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.use_case_id = use_case_id
        self.name = name
        self.from_model_id = from_model_id
        self.train_sample_ids = train_sample_ids
        self.test_sample_ids = test_sample_ids
        self.explain_tools = explain_tools

    def build_request(self, context: Context) -> CreateModelRequest:
        request = validate_request(
            CreateModelRequest,
            {
                "use_case_id": self.use_case_id,
                "name": self.name,
                "from_model_id": self.from_model_id,
                "train_sample_ids": self.train_sample_ids,
                "test_sample_ids": self.test_sample_ids,
                "explain_tools": self.explain_tools,
            },
        )
        # Validated as the user wrote it (a blank name is refused), then sent carrying the task's key.
        return request.model_copy(update={"name": name_for_task_instance(request.name, context)})

    def create(self, context: Context, request: CreateModelRequest) -> dict[str, Any]:
        hook: HappyRobotHook = self.hook  # type: ignore[assignment]

        def find() -> dict[str, Any] | None:
            found = hook.find_models(request)
            if not found:
                return None
            if len(found) > 1:
                self.log.warning(
                    "%d HappyRobot models carry this task instance's name %r (an earlier try overlapped): "
                    "adopting the oldest, %s; HappyRobot cannot delete the others: %s",
                    len(found),
                    request.name,
                    found[0]["id"],
                    ", ".join(m["id"] for m in found[1:]),
                )
            self.record(context, found[0])
            return found[0]

        def create() -> dict[str, Any]:
            model = hook.create_model(request)
            self.record(context, model)  # before anything else can fail
            return model

        model, created = create_once(find=find, create=create, retry=hook.client.retry, logger=self.log)
        self.log.info("%s HappyRobot model %s (%s)", "Created" if created else "Adopting", model["id"], request.name)
        return model

    def lineage(self, resource: dict[str, Any]) -> ModelLineage:
        base = self.hook.client.base_url
        use_case = resource.get("use_case_id") or self.use_case_id
        samples = resource.get("train_sample_ids") or self.train_sample_ids or []
        if isinstance(samples, str):
            samples = [samples]
        return ModelLineage(
            output=service_dataset(base, f"models/{resource['id']}"),
            service="happyrobot",
            resource_id=str(resource["id"]),
            state=self.lifecycle.state(resource),
            inputs=unique([service_dataset(base, f"use-cases/{use_case}/samples/{s}") for s in samples]),
        )

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"model_id": resource["id"]}
