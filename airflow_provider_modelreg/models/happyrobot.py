"""HappyRobot request models (seed: POST /api/v1/models)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from airflow_provider_modelreg.models.base import RequestModel

NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
ModelId = Annotated[str, StringConstraints(min_length=24, max_length=24)]


class CreateModelRequest(RequestModel):
    """Clone ``from_model_id`` and train it on the given samples."""

    use_case_id: NonEmpty
    name: NonEmpty
    from_model_id: ModelId = Field(description="ID of the model to clone (exactly 24 characters).")
    train_sample_ids: Annotated[list[NonEmpty], Field(min_length=1)]
    test_sample_ids: list[NonEmpty]
    explain_tools: bool = True


class ModelRef(RequestModel):
    """A model's address: the path parameter of ``GET /models/{id}`` (ids are 24 characters)."""

    model_id: ModelId
