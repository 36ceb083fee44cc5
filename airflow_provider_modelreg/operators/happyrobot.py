"""HappyRobot operators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, HappyRobotHook
from airflow_provider_modelreg.idempotency import create_once
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class HappyRobotCreateModelOperator(CreateAndWaitOperator):
    """Clone a HappyRobot model and train it; optionally wait until it is ``active``.

    A retried task returns the model its first try created (looked up by use case, name, source model
    and training samples among models created since the DAG run's ``run_after``), never a second one.

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
        return validate_request(
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

    def create(self, context: Context, request: CreateModelRequest) -> dict[str, Any]:
        hook: HappyRobotHook = self.hook  # type: ignore[assignment]
        since = context["dag_run"].run_after
        model, created = create_once(
            find=lambda: hook.find_model(request, since),
            create=lambda: hook.create_model(request),
            retry=hook.client.retry,
            logger=self.log,
        )
        self.log.info("%s HappyRobot model %s (%s)", "Created" if created else "Reusing", model["id"], request.name)
        return model

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"model_id": resource["id"]}
