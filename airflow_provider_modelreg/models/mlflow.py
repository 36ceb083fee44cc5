"""MLflow REST API 2.0 request models, for the OCI AI Data Platform flavour and open-source servers alike.

Limits come from the seed pages (model versions) and from open-source MLflow's documented per-call limits
(``runs/log-batch``). Bodies are snake_case on the wire, like the Python names.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

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
# Model-version tag values: a 2.x server stores at most 5000 characters (API-NOTES section 9), 3.x and the
# AI Data Platform 8000. The hook in hand says which applies (MlflowHook.model_version_tag_value_limit).
PLAIN_MLFLOW_MODEL_VERSION_TAG_VALUE_LENGTH = 5000

# MLflow's own rule for metric, param and tag keys (mlflow/utils/validation.py, read not copied): word
# characters, ``/ . - :`` and spaces; the name must not change under path normalisation (no ``..``, no
# leading ``/``, no ``//``). Colons are allowed by servers on POSIX hosts, which is where they run.
_KEY_CHARACTERS = re.compile(r"^[/\w.\- :]*$")


def _path_not_unique(name: str) -> bool:
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def mlflow_key(name: str) -> str:
    if not _KEY_CHARACTERS.match(name):
        raise ValueError(
            "MLflow keys may only contain alphanumerics, underscores (_), dashes (-), periods (.), colons (:), "
            f"spaces ( ) and slashes (/); got {name!r}"
        )
    if _path_not_unique(name):
        raise ValueError(
            f"MLflow keys must not resolve to another name as a path (no '..', leading '/' or '//'); got {name!r}"
        )
    return name


def registered_model_name(name: str) -> str:
    """MLflow 3.x's rule (the stricter, applied to every server): no ``/`` or ``:``, a unique path."""
    if not name.strip():
        raise ValueError("a registered model name must not be blank")
    if "/" in name or ":" in name:
        raise ValueError(f"registered model names cannot contain '/' or ':'; got {name!r}")
    if _path_not_unique(name):
        raise ValueError(f"registered model names must not resolve to another name as a path; got {name!r}")
    return name


# What a client may set with runs/update. INTERNAL_ERROR exists only in the OCI flavour and is set by the
# service, never by a client; an open-source server silently ignores an unknown status, so refuse it here.
RunStatus = Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]

Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH), AfterValidator(mlflow_key)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(registered_model_name)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def now_ms() -> int:
    return int(time.time() * 1000)


class Tag(RequestModel):
    """A run, registered-model or model-version tag."""

    key: Key
    value: Annotated[str, StringConstraints(max_length=MAX_TAG_VALUE_LENGTH)] = ""

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # Templated or XCom values arrive as numbers or booleans; a tag is a string on the wire.
        return value if isinstance(value, str) or value is None else str(value)


class Param(RequestModel):
    """A run parameter: logged once, never changed (MLflow refuses a different value later)."""

    key: Key
    value: Annotated[str, StringConstraints(max_length=MAX_PARAM_VALUE_LENGTH)]

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


class ModelVersionTag(RequestModel):
    """Seed limits: key 1..250, value at most 8000 characters."""

    key: Annotated[str, StringConstraints(min_length=1, max_length=250)]
    value: Annotated[str, StringConstraints(max_length=8000)] = ""

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        return value if isinstance(value, str) or value is None else str(value)


class CreateModelVersionRequest(RequestModel):
    """``model-versions/create`` with the seed page's limits and MLflow's name rule."""

    name: ModelName
    source: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    run_id: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    model_id: Annotated[str, StringConstraints(max_length=36)] | None = None
    run_link: Annotated[str, StringConstraints(max_length=500)] | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    tags: Annotated[list[ModelVersionTag], Field(max_length=20)] | None = None

    def check_tag_values(self, limit: int) -> None:
        """Refuse tag values over the limit of the server in hand (before the first request)."""
        for tag in self.tags or []:
            if len(tag.value) > limit:
                raise ValueError(
                    f"tags: the value of {tag.key!r} has {len(tag.value)} characters; this server takes at most {limit}"
                )


def tag_list(tags: Any) -> list[dict[str, Any]] | None:
    """Tags given as a mapping ``{key: value}`` or as a list of ``{"key", "value"}`` (or None)."""
    if tags is None:
        return None
    if isinstance(tags, dict):
        return [{"key": k, "value": v} for k, v in tags.items()]
    return list(tags)
