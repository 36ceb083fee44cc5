"""Request-model plumbing: validate before anything is sent, and say which field broke which rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class RequestModel(BaseModel):
    """Base of every create-request model: unknown fields are refused, not silently dropped."""

    # defer_build: the validators are built at first use (in execute()), not when a DAG file is parsed.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True, defer_build=True)

    def wire(self) -> dict[str, Any]:
        """The JSON body as the service expects it (aliases, no unset optional fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class InvalidRequest(ValueError):
    """A request body that breaks the service's documented rules; nothing was sent."""


def describe_validation_error(model: type[BaseModel], exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "(body)"
        problems.append(f"{where}: {error['msg']} [{error['type']}]")
    return f"invalid {model.__name__}, nothing was sent: " + "; ".join(problems)


def validate_request(model: type[M], data: Mapping[str, Any] | M, context: Mapping[str, Any] | None = None) -> M:
    """Build ``model`` from ``data``; raise :class:`InvalidRequest` naming each field and rule.

    ``context`` reaches the model's validators (e.g. which version of a service's name rule applies).
    """
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(dict(data), context=dict(context) if context else None)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(model, exc)) from None
