"""MLflow REST API 2.0 request models, for the OCI AI Data Platform flavour and open-source servers alike.

Limits come from the seed pages (model versions) and from open-source MLflow's documented per-call limits
(``runs/log-batch``). Bodies are snake_case on the wire, like the Python names.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from airflow_provider_modelreg.models.base import RequestModel

# runs/log-batch limits of open-source MLflow (the OCI flavour serves the same API).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_ITEMS_PER_BATCH = 1000
MAX_PARAM_VALUE_LENGTH = 6000
MAX_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_ALIAS_LENGTH = 255

# MLflow's rule for metric, param and tag keys, as mlflow.utils.validation applies it (2.22.5 and 3.17.2,
# read not copied): word characters, ``/ . - :`` and spaces (colons: servers run on POSIX hosts), and the
# name must not change under path normalisation (no ``..``, no leading ``/``, no ``//``).
# MLflow tests the characters with ``re.match`` and a ``$`` anchor, which also matches before one final
# newline: a key ending in a single "\n" is accepted, and real 2.22.5 and 3.17.2 servers store it as given
# (issue 29 said they answer 400; the servers are the judge). Ours says so explicitly.
_KEY_CHARACTERS = re.compile(r"[/\w.\- :]*")
_ALIAS_CHARACTERS = re.compile(r"[\w\-]*")


def _without_final_newline(name: str) -> str:
    return name[:-1] if name.endswith("\n") else name


def _path_not_unique(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def mlflow_key(name: str) -> str:
    """A metric, param or tag key by MLflow's rule (length is checked by the field), or ValueError."""
    if not _KEY_CHARACTERS.fullmatch(_without_final_newline(name)):
        raise ValueError(
            "MLflow keys may only contain alphanumerics, underscores (_), dashes (-), periods (.), colons (:), "
            f"spaces ( ) and slashes (/); got {name!r}"
        )
    if _path_not_unique(name):
        raise ValueError(
            f"MLflow keys must not resolve to another name as a path (no '..', leading '/' or '//'); got {name!r}"
        )
    return name


def alias_problem(alias: str) -> str | None:
    """Why MLflow refuses ``alias`` as a registered-model alias name, or None (length counts every
    character, the final newline MLflow's pattern lets through included)."""
    if alias == "":
        return "must not be empty"
    if not _ALIAS_CHARACTERS.fullmatch(_without_final_newline(alias)):
        return "may only contain letters, digits, '_' and '-'"
    if len(alias) > MAX_ALIAS_LENGTH:
        return f"must be at most {MAX_ALIAS_LENGTH} characters (got {len(alias)})"
    return None


def alias_reserved(alias: str) -> bool:
    """``latest`` (any case) and ``v<digits>`` name versions: MLflow refuses to set them as aliases."""
    body = _without_final_newline(alias)
    return alias.lower() == "latest" or (len(body) > 1 and body[0] in "vV" and body[1:].isdecimal())


def registered_model_name(name: str) -> str:
    """MLflow 3.x's rule: not blank, no ``/`` or ``:``, a unique path (2.x only refuses an empty name)."""
    if not name.strip():
        raise ValueError("a registered model name must not be blank")
    if "/" in name or ":" in name:
        raise ValueError(f"registered model names cannot contain '/' or ':'; got {name!r}")
    if _path_not_unique(name):
        raise ValueError(f"registered model names must not resolve to another name as a path; got {name!r}")
    return name


# -- the server in hand ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MlflowServerRules:
    """What differs between the servers a connection may reach: the flavour and MLflow's major version.

    Validators read it from the validation context (``validate_request(..., context=server_context(rules))``);
    without one, only what every server refuses is refused. ``MlflowHook.server_rules`` gives the rules of the
    connection's server (``GET /version`` on plain MLflow).
    """

    server: str  # named in errors
    model_name_max_length: int  # the AI Data Platform's seed: 255; MLflow's registry: its 256-character column
    model_name_path_rule: bool  # MLflow 3: not blank, no '/' or ':', a unique path
    model_version_tag_value_length: int

    @classmethod
    def of_mlflow(cls, version: str | None) -> MlflowServerRules:
        """The rules of an open-source server answering ``version`` (None: unknown, both majors' rules)."""
        major = _major(version)
        if major is None:
            return MLFLOW_UNKNOWN_RULES
        # A major newer than 3 is taken to keep 3.x's rules until it is checked.
        return replace(MLFLOW_3_RULES if major >= 3 else MLFLOW_2_RULES, server=f"MLflow {version}")

    def check_model_name(self, name: str) -> None:
        if len(name) > self.model_name_max_length:
            raise ValueError(
                f"{self.server} takes registered model names of at most {self.model_name_max_length} characters "
                f"(got {len(name)})"
            )
        if self.model_name_path_rule:
            try:
                registered_model_name(name)
            except ValueError as exc:
                raise ValueError(f"{exc} (the rule of {self.server})") from None


def _major(version: str | None) -> int | None:
    head = (version or "").strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


# Sources: mlflow.utils.validation and the real servers (2.22.5: model-version tag values at most 5000;
# 3.17.2: 100,000, and the name rule above); MLflow's registry schema (names are a 256-character column,
# which MySQL and PostgreSQL stores enforce and SQLite does not); the AI Data Platform's seed page (names
# 1..255, tag values at most 8000).
MLFLOW_NAME_COLUMN = 256
MLFLOW_2_RULES = MlflowServerRules(
    "MLflow 2.x", MLFLOW_NAME_COLUMN, model_name_path_rule=False, model_version_tag_value_length=5000
)
MLFLOW_3_RULES = MlflowServerRules(
    "MLflow 3.x", MLFLOW_NAME_COLUMN, model_name_path_rule=True, model_version_tag_value_length=100_000
)
# A server whose version could not be read: both majors' refusals together.
MLFLOW_UNKNOWN_RULES = MlflowServerRules(
    "an MLflow server of unknown version (2.x and 3.x rules together)",
    MLFLOW_NAME_COLUMN,
    model_name_path_rule=True,
    model_version_tag_value_length=5000,
)
AIDP_RULES = MlflowServerRules(
    "the OCI AI Data Platform", 255, model_name_path_rule=False, model_version_tag_value_length=8000
)
SERVER_RULES_KEY = "mlflow_server_rules"


def server_context(rules: MlflowServerRules) -> dict[str, Any]:
    """The validation context that applies ``rules`` (see :class:`MlflowServerRules`)."""
    return {SERVER_RULES_KEY: rules}


def _rules_in(info: ValidationInfo) -> MlflowServerRules | None:
    context = info.context
    return context.get(SERVER_RULES_KEY) if isinstance(context, dict) else None


def _not_truncated(what: str, limit: int) -> Callable[[str], str]:
    """Refuse a value longer than ``limit``: an MLflow server would keep only its first ``limit`` characters
    without an error (``MLFLOW_TRUNCATE_LONG_VALUES``, on by default in 2.x and 3.x), losing the rest."""

    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(
                f"{what} has {len(value)} characters, at most {limit} are allowed: MLflow would silently truncate "
                f"it to {limit} characters (the rest would be lost), so it is refused"
            )
        return value

    return check


# What a client may set with runs/update. INTERNAL_ERROR exists only in the OCI flavour and is set by the
# service, never by a client; an open-source server silently ignores an unknown status, so refuse it here.
RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(mlflow_key)]
# MLflow refuses only an empty name everywhere; the rest depends on the server (MlflowServerRules).
ModelName = Annotated[str, StringConstraints(min_length=1)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def now_ms() -> int:
    return int(time.time() * 1000)


class Tag(RequestModel):
    """A run, registered-model or model-version tag."""

    key: Key
    value: Annotated[str, AfterValidator(_not_truncated("the tag value", MAX_TAG_VALUE_LENGTH))] = ""

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # Templated or XCom values arrive as numbers or booleans; a tag is a string on the wire.
        return value if isinstance(value, str) or value is None else str(value)


class Param(RequestModel):
    """A run parameter: logged once, never changed (MLflow refuses a different value later)."""

    key: Key
    value: Annotated[str, AfterValidator(_not_truncated("the param value", MAX_PARAM_VALUE_LENGTH))]

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if isinstance(value, str) else str(value)


class Metric(RequestModel):
    """One metric point. ``value`` must be a finite number (a numeric string is accepted and converted:
    templated values render as strings). An open-source server stores a non-number as 0 without error,
    so a bad value is refused here, before anything is sent."""

    key: Key
    value: Annotated[float, Field(allow_inf_nan=False)]
    timestamp: Annotated[int, Field(ge=0)] = Field(default_factory=now_ms)
    step: int = 0

    @field_validator("value", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("a metric value must be a number, not a boolean")
        return value


class CreateExperimentRequest(RequestModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXPERIMENT_NAME_LENGTH)]
    artifact_location: str | None = None
    tags: list[Tag] | None = None


class CreateRunRequest(RequestModel):
    """``start_time`` is always sent: an open-source server stores 0 when it is missing."""

    experiment_id: NonEmpty
    run_name: Annotated[str, StringConstraints(max_length=MAX_KEY_LENGTH)] | None = None
    start_time: Annotated[int, Field(ge=0)] = Field(default_factory=now_ms)
    tags: list[Tag] = Field(default_factory=list)


class UpdateRunRequest(RequestModel):
    run_id: NonEmpty
    status: RunStatus | None = None
    end_time: Annotated[int, Field(ge=0)] | None = None
    run_name: Annotated[str, StringConstraints(max_length=MAX_KEY_LENGTH)] | None = None


class LogBatchRequest(RequestModel):
    """Everything to log to one run; :meth:`chunks` splits it to the per-call limits."""

    run_id: NonEmpty
    metrics: list[Metric] = Field(default_factory=list)
    params: list[Param] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _params_once(self) -> LogBatchRequest:
        # The same key twice with two values would be refused by the server half-way through the log.
        seen: dict[str, str] = {}
        for param in self.params:
            if seen.setdefault(param.key, param.value) != param.value:
                raise ValueError(f"param {param.key!r} is given twice with different values")
        return self

    def is_empty(self) -> bool:
        return not (self.metrics or self.params or self.tags)

    def chunks(self) -> Iterator[dict[str, Any]]:
        """Wire bodies of at most 1000 metrics, 100 params, 100 tags and 1000 items each."""
        metrics = [m.wire() for m in self.metrics]
        params = [p.wire() for p in self.params]
        tags = [t.wire() for t in self.tags]
        while metrics or params or tags:
            # Params and tags first: they are few and a run is more useful with them early.
            take_params, params = params[:MAX_PARAMS_PER_BATCH], params[MAX_PARAMS_PER_BATCH:]
            take_tags, tags = tags[:MAX_TAGS_PER_BATCH], tags[MAX_TAGS_PER_BATCH:]
            room = min(MAX_METRICS_PER_BATCH, MAX_ITEMS_PER_BATCH - len(take_params) - len(take_tags))
            take_metrics, metrics = metrics[:room], metrics[room:]
            body: dict[str, Any] = {"run_id": self.run_id}
            if take_metrics:
                body["metrics"] = take_metrics
            if take_params:
                body["params"] = take_params
            if take_tags:
                body["tags"] = take_tags
            yield body


class CreateRegisteredModelRequest(RequestModel):
    name: ModelName
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    tags: Annotated[list[Tag], Field(max_length=20)] | None = None

    @field_validator("name")
    @classmethod
    def _name_on_this_server(cls, name: str, info: ValidationInfo) -> str:
        if (rules := _rules_in(info)) is not None:
            rules.check_model_name(name)
        return name


class ModelVersionTag(RequestModel):
    """Key: MLflow's key rule, 1..250 (as MLflow's registry applies it); the value's limit depends on the
    server (:class:`MlflowServerRules`), checked by the request."""

    key: Key
    value: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if isinstance(value, str) or value is None else str(value)


class CreateModelVersionRequest(RequestModel):
    """``model-versions/create`` with the seed page's limits and the rules of the server in hand."""

    name: ModelName
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    run_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    model_id: Annotated[str, StringConstraints(max_length=36)] | None = None
    run_link: Annotated[str, StringConstraints(max_length=500)] | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    tags: Annotated[list[ModelVersionTag], Field(max_length=20)] | None = None

    @field_validator("name")
    @classmethod
    def _name_on_this_server(cls, name: str, info: ValidationInfo) -> str:
        if (rules := _rules_in(info)) is not None:
            rules.check_model_name(name)
        return name

    @field_validator("tags")
    @classmethod
    def _tag_values_on_this_server(
        cls, tags: list[ModelVersionTag] | None, info: ValidationInfo
    ) -> list[ModelVersionTag] | None:
        if (rules := _rules_in(info)) is not None:
            limit = rules.model_version_tag_value_length
            for tag in tags or []:
                if len(tag.value) > limit:
                    # A registry refuses it with 400 (no truncation): refused here before the model is made.
                    raise ValueError(
                        f"the value of {tag.key!r} has {len(tag.value)} characters; {rules.server} takes at most "
                        f"{limit}"
                    )
        return tags


def tag_list(tags: Any) -> list[dict[str, Any]] | None:
    """Tags given as a mapping ``{key: value}`` or as a list of ``{"key", "value"}`` (or None)."""
    if tags is None:
        return None
    if isinstance(tags, dict):
        return [{"key": k, "value": v} for k, v in tags.items()]
    return list(tags)
