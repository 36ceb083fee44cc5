"""HappyRobot operators."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg import task_state
from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE, AmbiguousModel, HappyRobotHook
from airflow_provider_modelreg.idempotency import create_once, generation
from airflow_provider_modelreg.lineage import ModelLineage, service_dataset, unique
from airflow_provider_modelreg.models.base import validate_request
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator
from airflow_provider_modelreg.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

SERVICE = "happyrobot"
# When this task instance's first try began (Airflow 3.3's task state store, 3.2's Variables): a note about
# the task instance, not a resource, so it claims nothing. The model itself is recorded and claimed under
# SERVICE by the shared flow (``record``), where the lookup reads claims.
FIRST_TRY = "first_try_started"


def _named(context: Context, name: str) -> str:
    """A task instance asked to create anew (``on_failed_resource="recreate"``) records its new model apart."""
    created_anew = generation(context)
    return f"{name}.generation{created_anew}" if created_anew else name


class HappyRobotCreateModelOperator(CreateAndWaitOperator):
    """Clone a HappyRobot model and train it; optionally wait until it is ``active``.

    A model belongs to the task instance that created it: its id is recorded durably the moment the create
    answers, and a retry returns that model. Only when a create's answer was lost does a retry look the model
    up, adopting one that no task instance has recorded, with the same name, use case and source model,
    created since this task instance's first try began, and only when exactly one matches (several: the
    task fails, naming them). HappyRobot has no idempotency key, so overlapping tries of one task instance
    (e.g. a worker lost while its try still runs) can still make two models.

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
        # A model an earlier try recorded was already taken up by reconnect(); here it is gone or never was.
        first_try = task_state.recall(context, _named(context, FIRST_TRY))
        # A task instance that never sent a create has no model of its own to find. Looking anyway would
        # see another task's model in the moment between its create and its claim (a backfill's concurrent
        # map indexes share name, use case and source) and adopt it: only look after a create was sent.
        sent = {"create": first_try is not None}
        if first_try is None:
            first_try = datetime.now(timezone.utc).isoformat()
            task_state.remember(context, _named(context, FIRST_TRY), first_try, claim=None)
        since = datetime.fromisoformat(first_try)

        def find() -> dict[str, Any] | None:
            if not sent["create"]:
                return None
            try:
                found = hook.find_model(request, since, partial(task_state.is_claimed, SERVICE))
            except AmbiguousModel as exc:
                raise AirflowFailException(str(exc)) from None
            if found is not None:
                self.record(context, found)
            return found

        def create() -> dict[str, Any]:
            sent["create"] = True
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
