"""NVIDIA NeMo Platform operators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.hooks.nemo import MODEL_SPEC_LIFECYCLE, NemoModelsHook
from airflow_provider_modelreg.http import ServiceError
from airflow_provider_modelreg.idempotency import create_once, idempotency_key
from airflow_provider_modelreg.lineage import ModelLineage, service_dataset, unique
from airflow_provider_modelreg.models.nemo import CreateModelEntity, WorkspaceRef, entity_differences, validate_names
from airflow_provider_modelreg.operators.base import CreateAndWaitOperator
from airflow_provider_modelreg.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

# The custom field that records which task instance created an entity (see NemoCreateModelOperator).
IDEMPOTENCY_FIELD = "airflow_idempotency_key"
REDACTED = "***"


def redact_entity(entity: Any) -> Any:
    """The entity without its inference endpoint's API key, for XCom."""
    endpoint = entity.get("api_endpoint") if isinstance(entity, dict) else None
    if isinstance(endpoint, dict) and endpoint.get("api_key"):
        return entity | {"api_endpoint": endpoint | {"api_key": REDACTED}}
    return entity


@dataclass(frozen=True)
class NemoCreateRequest:
    """A validated create call: the workspace (path parameter) and the body."""

    workspace: str
    body: CreateModelEntity
    key: str


class NemoCreateModelOperator(CreateAndWaitOperator):
    """Register a model entity in an NVIDIA NeMo Platform workspace; optionally wait until the platform
    has generated its ``spec`` from the fileset. Returns the entity (``api_endpoint.api_key`` redacted).

    Idempotent: the task instance's idempotency key is stored in the entity's
    ``custom_fields["airflow_idempotency_key"]``, which proves which task instance created it. When the name
    is taken (found before creating, or answered 409), the existing entity is returned if it carries this
    task instance's key and every value the request sets; otherwise the task fails at once, naming the
    differing fields (a name used by an earlier DAG run, by another task or outside Airflow is never adopted).
    Template the name per run for scheduled DAGs in lowercase (e.g.
    ``"bot-{{ dag_run.run_after | ts_nodash | lower }}"``: ``ts_nodash``'s ``T`` is refused by the platform).

    The wait (``wait_for_completion``, sync or ``deferrable``) only happens when the entity has a fileset:
    without one the platform generates no spec and the task returns at once.

    :param name: name of the model entity: 2..63 characters, a lowercase letter first, then ``a-z 0-9 - @ . + _``,
        no ``--``, not ending in ``-`` (the platform's rule since 0.4.0; connection extra ``name_rule: "0.3"``
        allows the older rule: letters, digits, ``_``, ``-``, ``.``, at most 255).
    :param workspace: workspace of the entity (default: the connection's ``workspace`` extra, else ``default``).
    :param project: a project of the workspace (letters, digits, ``_``, ``-``, ``.``, ``/``; at most 255). It
        must exist: the platform refuses a model naming a project it does not have (HTTP 422 "Project '...' does
        not exist in workspace '...'. Please create the project first."), which fails the task at once.
    :param description: description (at most 1000 characters).
    :param fileset: checkpoint fileset as ``{workspace}/{fileset_name}`` or a bare name (the model's workspace);
        the platform derives ``spec`` from it.
    :param base_model: the model this one is based on (e.g. ``default/llama-3.1-8b-instruct``).
    :param finetuning_type: e.g. ``all_weights`` for a full-weight fine-tuned model, ``lora_merged``, ...
    :param backend_format: ``OPENAI_CHAT`` (the platform's default) or ``ANTHROPIC_MESSAGES``.
    :param api_endpoint: inference endpoint ``{"url", "model_id", "api_key", "format"}``. Not templated; its
        ``api_key`` is masked in logs and redacted in XCom.
    :param prompt: ``{"system_prompt", "icl_few_shot_examples", "system_prompt_template", "inference_params"}``.
    :param custom_fields: custom metadata (the operator adds ``airflow_idempotency_key``).
    :param ownership: ownership information.
    :param model_providers: ModelProvider names as ``workspace/name`` or bare names.
    :param trust_remote_code: let the platform run custom Python code shipped with the checkpoint. Default
        false and sent as false; only a literal ``True`` here switches it on (logged as a warning). Not
        templated. The platform only accepts it from administrators or for pre-approved fileset sources.
    :param conn_id: a ``nemo_platform`` connection (default ``nemo_default``).
    :param wait_for_completion: wait until ``spec`` is filled (only when there is a fileset).
    :param deferrable: wait in the triggerer.
    :param poll_interval: seconds between reads of the entity.
    :param wait_timeout: seconds before the wait fails; the message names the entity and its workspace.
    """

    hook_class = NemoModelsHook
    lifecycle = MODEL_SPEC_LIFECYCLE
    template_fields: Sequence[str] = (
        "name",
        "workspace",
        "project",
        "description",
        "fileset",
        "base_model",
        "finetuning_type",
        "backend_format",
        "prompt",
        "custom_fields",
        "ownership",
        "model_providers",
        "conn_id",
    )
    template_fields_renderers = {"prompt": "json", "custom_fields": "json", "ownership": "json"}
    ui_color = "#e6f5d0"

    def __init__(
        self,
        *,
        name: str,
        workspace: str | None = None,
        project: str | None = None,
        description: str | None = None,
        fileset: str | None = None,
        base_model: str | None = None,
        finetuning_type: str | None = None,
        backend_format: str | None = None,
        api_endpoint: dict[str, Any] | None = None,
        prompt: dict[str, Any] | None = None,
        custom_fields: dict[str, Any] | None = None,
        ownership: dict[str, Any] | None = None,
        model_providers: list[str] | None = None,
        trust_remote_code: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.workspace = workspace
        self.project = project
        self.description = description
        self.fileset = fileset
        self.base_model = base_model
        self.finetuning_type = finetuning_type
        self.backend_format = backend_format
        self.api_endpoint = api_endpoint
        self.prompt = prompt
        self.custom_fields = custom_fields
        self.ownership = ownership
        self.model_providers = model_providers
        self.trust_remote_code = trust_remote_code

    @property
    def nemo_hook(self) -> NemoModelsHook:
        return self.hook  # type: ignore[return-value]

    def build_request(self, context: Context) -> NemoCreateRequest:
        key = idempotency_key(context)
        if isinstance(self.api_endpoint, dict):
            self.nemo_hook.mask(self.api_endpoint.get("api_key"))
        custom_fields = dict(self.custom_fields or {})
        if custom_fields.get(IDEMPOTENCY_FIELD) not in (None, key):
            self.log.warning("custom_fields[%r] is set by the operator; ignoring the given value", IDEMPOTENCY_FIELD)
        custom_fields[IDEMPOTENCY_FIELD] = key

        # Which name rule the platform enforces is the connection's (today's unless name_rule is "0.3").
        def names() -> dict[str, Any]:
            return self.nemo_hook.name_context

        body = validate_names(
            CreateModelEntity,
            {
                "name": self.name,
                "project": self.project,
                "description": self.description,
                "fileset": self.fileset,
                "base_model": self.base_model,
                "finetuning_type": self.finetuning_type,
                "backend_format": self.backend_format,
                "api_endpoint": self.api_endpoint,
                "prompt": self.prompt,
                "custom_fields": custom_fields,
                "ownership": self.ownership,
                "model_providers": self.model_providers,
                "trust_remote_code": self.trust_remote_code,
            },
            names,
        )
        # Validated before anything is sent (only the connection is read), so a bad name fails at once.
        workspace = self.workspace
        if workspace is not None:
            validate_names(WorkspaceRef, {"workspace": workspace}, names)
        else:
            workspace = self.nemo_hook.default_workspace
        return NemoCreateRequest(workspace=workspace, body=body, key=key)

    def create(self, context: Context, request: NemoCreateRequest) -> dict[str, Any]:
        hook = self.nemo_hook
        body = request.body
        if body.trust_remote_code:
            self.log.warning(
                "trust_remote_code=True was set explicitly: the platform may run custom Python code from "
                "fileset %s when it loads this model",
                body.fileset,
            )

        def find() -> dict[str, Any] | None:
            existing = hook.find_model(request.workspace, body.name)
            if existing is not None:
                self._check_same(request, existing)
            return existing

        def create() -> dict[str, Any]:
            try:
                return hook.create_model(request.workspace, body)
            except ServiceError as exc:
                # 409: the name was taken since find() looked (or by an earlier try whose answer was lost).
                if exc.status != 409 or (existing := find()) is None:
                    raise
                self.log.info("The platform answered 409 (%s); the entity is this task's own", exc.message)
                return existing

        try:
            entity, created = create_once(find=find, create=create, retry=hook.client.retry, logger=self.log)
        except ServiceError as exc:
            # The platform refused the body (400 bad fileset, 422 validation) or the caller's rights (403, e.g.
            # trust_remote_code without admin for an unapproved source): no retry would change that.
            if exc.status in (400, 403, 422):
                raise AirflowFailException(str(exc)) from None
            raise
        self.log.info(
            "%s NeMo model entity %s/%s", "Created" if created else "Reusing", request.workspace, entity.get("name")
        )
        return entity

    def _check_same(self, request: NemoCreateRequest, existing: dict[str, Any]) -> None:
        differing = entity_differences(request.body, existing)
        if not differing:
            return
        where = self.lifecycle.describe({"workspace": request.workspace, "name": request.body.name})
        owner = (existing.get("custom_fields") or {}).get(IDEMPOTENCY_FIELD)
        if owner == request.key:
            origin = "an earlier try of this task instance created it with other arguments"
        elif owner:
            origin = f"another task instance created it ({IDEMPOTENCY_FIELD} {owner})"
        else:
            origin = f"it was not created by this provider (no {IDEMPOTENCY_FIELD})"
        raise AirflowFailException(
            f"{where} already exists and differs from this task's request in: {', '.join(differing)}; {origin}. "
            "Use another name, or delete the existing entity."
        )

    def resource_ref(self, resource: dict[str, Any]) -> dict[str, Any]:
        # workspace first: describe() then reads "NeMo model entity workspace=..., name=..." in every message.
        workspace = resource.get("workspace") or self.workspace or self.nemo_hook.default_workspace
        return {"workspace": workspace, "name": resource["name"]}

    def discard_failed(self, ref: dict[str, Any], resource: Any) -> None:
        # An entity's name is unique in its workspace: the failed one (this task instance's own) must go
        # before its new one can be created.
        self.log.warning("Deleting %s, which this task instance created and whose spec analysis failed", ref)
        self.nemo_hook.delete_model(ref["workspace"], ref["name"])

    def wait(self, ref: dict[str, Any], resource: Any) -> Any:
        if isinstance(resource, dict) and resource.get("spec") is None and not resource.get("fileset"):
            self.log.info(
                "%s has no fileset, so the platform generates no spec: not waiting", self.lifecycle.describe(ref)
            )
            return self._done(resource)
        return super().wait(ref, resource)

    def to_xcom(self, resource: Any) -> Any:
        return redact_entity(resource)

    def lineage(self, resource: dict[str, Any]) -> ModelLineage:
        base = self.nemo_hook.client.base_url
        workspace = resource.get("workspace") or self.workspace or self.nemo_hook.default_workspace
        fileset = resource.get("fileset") or self.fileset
        inputs = []
        if fileset:
            # A bare fileset name lives in the model's workspace (the platform's rule).
            qualified = fileset if "/" in fileset else f"{workspace}/{fileset}"
            inputs.append(service_dataset(base, f"filesets/{qualified}"))
        return ModelLineage(
            output=service_dataset(base, f"models/{workspace}/{resource['name']}"),
            service="nemo",
            resource_id=f"{workspace}/{resource['name']}",
            version=None if resource.get("version") is None else str(resource["version"]),
            state=self.lifecycle.state(resource),
            inputs=unique(inputs),
        )
