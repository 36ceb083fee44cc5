"""NVIDIA NeMo Platform Models API v2 request models (seed: POST /apis/models/v2/workspaces/{workspace}/models).

Wire format is snake_case, the same as the Python names, so no aliases are needed. Limits are the seed page's;
enums are the platform's own (``FinetuningType`` and ``BackendFormat`` of its Models service schema).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Annotated, Any

from pydantic import AfterValidator, AnyUrl, Field, StrictBool, StringConstraints, ValidationInfo
from pydantic_core import PydanticCustomError

from airflow_provider_modelreg.models.base import RequestModel

# The platform's name rule since nemo-platform 0.4.0, through nemo-helix 0.8.1 (its server refuses anything
# else with 422; the seed's looser rule is 0.3.0's, so the vendor wins): 2..63 characters, a lowercase
# letter first, then lowercase letters, digits and - @ . + _, no "--", no "-" at the end.
NAME_PATTERN = r"^[a-z](?!.*--)[a-z0-9\-@.+_]{1,62}(?<!-)$"
NAME_RULE = "2..63 characters: a lowercase letter, then a-z 0-9 - @ . + _, no '--', not ending in '-'"
# nemo-platform 0.3.0's rule (the seed's), for old platforms: connection extra ``name_rule: "0.3"``.
LEGACY_NAME_PATTERN = r"^[\w\-.]{1,255}$"
LEGACY_NAME_RULE = "at most 255 letters, digits, '_', '-' or '.'"
LEGACY = "0.3"
PROJECT_PATTERN = r"^[\w\-./]+$"
_NAME = re.compile(NAME_PATTERN)
_LEGACY_NAME = re.compile(LEGACY_NAME_PATTERN)


# Paths (the hook's own fence): a name either rule allows can exist on some platform, so either is let through.
EITHER = "either"


def _rules(info: ValidationInfo | None) -> list[tuple[re.Pattern[str], str]]:
    rule = str(info.context.get("name_rule")) if info and info.context else None
    if rule == LEGACY:
        return [(_LEGACY_NAME, LEGACY_NAME_RULE)]
    if rule == EITHER:
        return [(_NAME, NAME_RULE), (_LEGACY_NAME, LEGACY_NAME_RULE)]
    return [(_NAME, NAME_RULE)]


def _mismatch(rules: list[tuple[re.Pattern[str], str]], what: str) -> PydanticCustomError:
    return PydanticCustomError(
        "string_pattern_mismatch",
        "String should match pattern '{pattern}' ({what}: {rule})",
        {
            "pattern": "' or '".join(p.pattern for p, _ in rules),
            "what": what,
            "rule": " or ".join(r for _, r in rules),
        },
    )


def _is_name(value: str, rules: list[tuple[re.Pattern[str], str]]) -> bool:
    # fullmatch, not match: "$" would let a trailing newline through
    return any(pattern.fullmatch(value) for pattern, _ in rules)


def _check_name(value: str, info: ValidationInfo) -> str:
    rules = _rules(info)
    if not _is_name(value, rules):
        raise _mismatch(rules, "a NeMo Platform name")
    return value


def _check_reference(value: str, info: ValidationInfo) -> str:
    """``name`` (the model's own workspace) or ``workspace/name``: each segment follows the name rule."""
    rules = _rules(info)
    segments = value.split("/")
    if len(segments) > 2 or not all(_is_name(segment, rules) for segment in segments):
        raise _mismatch(rules, "'name' or 'workspace/name', each part")
    return value


def validate_names(model: type[Any], data: Mapping[str, Any], names: Any) -> Any:
    """Validate with today's name rule; read the connection's ``name_rule`` (``names()``) only when that
    refuses, so a valid request needs no connection to be checked and an old platform may allow more."""
    from airflow_provider_modelreg.models.base import InvalidRequest, validate_request

    try:
        return validate_request(model, data)
    except InvalidRequest:
        context = names()
        if context.get("name_rule") != LEGACY:
            raise
        return validate_request(model, data, context)


EntityName = Annotated[str, AfterValidator(_check_name)]
ProjectUrn = Annotated[str, StringConstraints(pattern=PROJECT_PATTERN, max_length=255)]
WorkspaceReference = Annotated[str, AfterValidator(_check_reference)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class FinetuningType(str, Enum):
    """The platform's ``FinetuningType`` values (its Models service schema); the seed only says "enum".

    ``all_weights`` is the usual value for a full-weight fine-tuned model entity (the seed's "Set for full
    weight finetuned models"); ``lora_merged`` for a LoRA adapter merged into the weights.
    """

    LORA_MERGED = "lora_merged"
    ALL_WEIGHTS = "all_weights"
    LAST_LAYER = "last_layer"
    TOP_LAYERS = "top_layers"
    GRADUAL_UNFREEZING = "gradual_unfreezing"
    BIAS_ONLY = "bias_only"
    ATTENTION_ONLY = "attention_only"
    LORA = "lora"
    QLORA = "qlora"
    ADALORA = "adalora"
    DORA = "dora"
    LORA_PLUS = "lora_plus"
    PROMPT_TUNING = "prompt_tuning"
    PREFIX_TUNING = "prefix_tuning"
    P_TUNING = "p_tuning"
    P_TUNING_V2 = "p_tuning_v2"
    SOFT_PROMPT = "soft_prompt"
    PPO = "ppo"
    DPO = "dpo"
    CDPO = "cdpo"
    IPO = "ipo"
    ORPO = "orpo"
    KTO = "kto"
    RRHF = "rrhf"
    GRPO = "grpo"


class BackendFormat(str, Enum):
    """Inference API wire format of the backend; unset means OPENAI_CHAT for the platform's routing."""

    OPENAI_CHAT = "OPENAI_CHAT"
    ANTHROPIC_MESSAGES = "ANTHROPIC_MESSAGES"


def _check_url(value: str) -> str:
    AnyUrl(value)  # the platform parses it as a URL; refuse what it would refuse, but send it unchanged
    return value


class ApiEndpoint(RequestModel):
    """Data about the inference endpoint of the model. ``api_key`` is a secret: the operator masks it."""

    url: Annotated[str, AfterValidator(_check_url)] | None = None
    model_id: str | None = None
    api_key: str | None = None
    format: str | None = Field(default=None, description="API format, e.g. openai or nvidia.")


class PromptData(RequestModel):
    """Prompt engineering configuration. ``inference_params`` is passed through; the platform validates it."""

    system_prompt: str | None = None
    icl_few_shot_examples: str | None = None
    system_prompt_template: str | None = None
    inference_params: dict[str, Any] | None = None


class CreateModelEntity(RequestModel):
    """Body of ``POST /apis/models/v2/workspaces/{workspace}/models``.

    ``spec`` is left out on purpose: the platform generates it from the fileset. ``trust_remote_code`` is
    a strict boolean (a templated string such as "yes" cannot switch it on) and is always sent, false
    unless set.
    """

    name: EntityName
    # A project of the workspace, which must exist (nemo-platform 0.6.0 answers 422 "Project '...' does not exist
    # in workspace '...'"): the request field's own rule is the server's (word characters, '.', '-', '/').
    project: ProjectUrn | None = Field(default=None, description="A project that exists in the workspace.")
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    fileset: WorkspaceReference | None = Field(
        default=None, description="Checkpoint fileset, '{workspace}/{name}' or a bare name (the model's workspace)."
    )
    finetuning_type: FinetuningType | None = None
    base_model: NonEmpty | None = None
    api_endpoint: ApiEndpoint | None = None
    backend_format: BackendFormat | None = None
    prompt: PromptData | None = None
    custom_fields: dict[str, Any] | None = None
    ownership: dict[str, Any] | None = None
    model_providers: list[WorkspaceReference] | None = None
    trust_remote_code: StrictBool = False


class WorkspaceRef(RequestModel):
    """A workspace: the path parameter of create and list (checked so no path can be smuggled in)."""

    workspace: EntityName


class ModelEntityRef(WorkspaceRef):
    """A model entity's address: the path parameters of get, update and delete."""

    name: EntityName


# -- comparing a request with an entity that already exists -----------------------------------------
# Never compared: secrets, which an API need not echo back.
_NOT_COMPARED = frozenset({"api_endpoint.api_key"})


def _is_unset(value: Any) -> bool:
    return value is None or value is False or value == [] or value == {} or value == ""


def _collect(path: str, want: Any, have: Any, out: list[str]) -> None:
    if path in _NOT_COMPARED or (_is_unset(want) and _is_unset(have)):
        return
    if isinstance(want, Mapping) and isinstance(have, Mapping):
        for key in want:  # only what the request says: the platform may add keys of its own
            _collect(f"{path}.{key}", want[key], have.get(key), out)
        return
    if path.endswith(".url") and isinstance(want, str) and isinstance(have, str):
        want, have = _normal_url(want), _normal_url(have)
    elif _is_scalar(want) and _is_scalar(have) and type(want) is not type(have):
        # The platform coerces typed fields it stores ("256" -> 256, 1 -> 1.0): compare as it would.
        want, have = _normal_scalar(want), _normal_scalar(have)
    if want != have:
        out.append(path)


def _normal_url(value: str) -> str:
    """A URL as the platform stores it (pydantic ``AnyUrl``: host lower-cased, default port dropped)."""
    try:
        return str(AnyUrl(value)).rstrip("/")
    except ValueError:
        return value.rstrip("/")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _normal_scalar(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if number == number else value  # NaN stays as given


def entity_differences(request: CreateModelEntity, entity: Mapping[str, Any]) -> list[str]:
    """Dotted paths of the values the request sets that the existing entity does not have.

    Only what the request sets is compared (the platform fills ``spec``, ``adapters``, timestamps, and may
    fill ``ownership`` or nested defaults); unset values (None, false, empty) equal each other; objects are
    compared key by key, so the answer names e.g. ``custom_fields.airflow_idempotency_key``.
    """
    out: list[str] = []
    for field_name, want in request.wire().items():
        _collect(field_name, want, entity.get(field_name), out)
    return out
