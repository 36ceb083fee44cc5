"""OCI AI Vision request models (seed: ``POST /20220125/models``, ``CreateModelDetails``).

camelCase on the wire, snake_case in Python: both spellings are accepted as input, ``wire()`` writes camelCase.

Where the rules come from:
- required fields, model types (IMAGE_CLASSIFICATION, OBJECT_DETECTION), dataset types and their required
  fields: the ``oci`` SDK's ``oci.ai_vision.models`` (CreateModelDetails, Model, Dataset,
  DataScienceLabelingDataset, ObjectStorageDataset);
- OCID shape: OCI's documented ``ocid1.<resource type>.<realm>.[region].<unique id>`` format;
- tag limits: OCI's tagging limits (key 1..100 characters, value at most 256, at most 64 tags of a kind);
- text lengths (``DISPLAY_NAME_MAX``, ``DESCRIPTION_MAX``, ``MODEL_VERSION_MAX``): OCI's usual limits for
  these fields, NOT confirmed for Vision by the seed or the SDK; they are module constants so they can be
  relaxed without touching the models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Discriminator, Field, StringConstraints, Tag
from pydantic.alias_generators import to_camel

from airflow_provider_modelreg.models.base import RequestModel

MODEL_TYPES = ("IMAGE_CLASSIFICATION", "OBJECT_DETECTION")
DATASET_TYPES = ("DATA_SCIENCE_LABELING", "OBJECT_STORAGE")

DISPLAY_NAME_MAX = 255
DESCRIPTION_MAX = 400
MODEL_VERSION_MAX = 255
OCID_MAX = 255
TAG_KEY_MAX = 100
TAG_VALUE_MAX = 256
TAGS_MAX = 64

# ocid1.<resource type>.<realm>.[region][.future use].<unique id>; the region part may be empty ("..").
OCID_PATTERN = r"^ocid1\.[a-z0-9_-]+\.[a-z0-9_-]+\.[a-z0-9_-]*(\.[a-z0-9_-]*)?\.[A-Za-z0-9_-]+$"

Ocid = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=OCID_MAX, pattern=OCID_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=DISPLAY_NAME_MAX)]
Description = Annotated[str, StringConstraints(max_length=DESCRIPTION_MAX)]
ModelVersion = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MODEL_VERSION_MAX)]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=TAG_KEY_MAX)]
TagValue = Annotated[str, StringConstraints(max_length=TAG_VALUE_MAX)]


class OCIRequestModel(RequestModel):
    """An OCI request body: camelCase aliases; validation errors name the Python (snake_case) field."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        alias_generator=to_camel,
        loc_by_alias=False,
        allow_inf_nan=False,
    )


class DataScienceLabelingDataset(OCIRequestModel):
    """A dataset of the OCI Data Labeling service."""

    dataset_type: Literal["DATA_SCIENCE_LABELING"] = "DATA_SCIENCE_LABELING"
    dataset_id: Ocid = Field(description="OCID of the Data Labeling dataset.")


class ObjectStorageDataset(OCIRequestModel):
    """A labelled dataset file in Object Storage."""

    dataset_type: Literal["OBJECT_STORAGE"] = "OBJECT_STORAGE"
    namespace_name: Text
    bucket_name: Text
    object_name: Text


# datasetType picks the variant; without it, nothing says which one is meant, so it is required. A callable
# discriminator, so a missing or unknown value gets an error naming the field (by its wire name) and its
# allowed values: pydantic's own for a named discriminator names neither.
DATASET_TYPES = ("DATA_SCIENCE_LABELING", "OBJECT_STORAGE")


def _dataset_type(value: Any) -> Any:
    if isinstance(value, Mapping):
        return value.get("datasetType", value.get("dataset_type"))
    return getattr(value, "dataset_type", None)


Dataset = Annotated[
    Union[  # noqa: UP007 - pydantic needs the Union here
        Annotated[DataScienceLabelingDataset, Tag("DATA_SCIENCE_LABELING")],
        Annotated[ObjectStorageDataset, Tag("OBJECT_STORAGE")],
    ],
    Discriminator(
        _dataset_type,
        custom_error_type="dataset_type",
        custom_error_message=f"datasetType is required, one of {', '.join(map(repr, DATASET_TYPES))}",
    ),
]


class CreateModelDetails(OCIRequestModel):
    """The body of ``POST /20220125/models``: train a custom Vision model."""

    compartment_id: Ocid
    project_id: Ocid
    model_type: Literal["IMAGE_CLASSIFICATION", "OBJECT_DETECTION"]
    training_dataset: Dataset
    testing_dataset: Dataset | None = None
    validation_dataset: Dataset | None = None
    display_name: DisplayName | None = None
    description: Description | None = None
    model_version: ModelVersion | None = None
    is_quick_mode: bool | None = None
    max_training_duration_in_hours: Annotated[float, Field(gt=0)] | None = None
    freeform_tags: Annotated[dict[TagKey, TagValue], Field(max_length=TAGS_MAX)] | None = None
    defined_tags: Annotated[dict[TagKey, dict[TagKey, Any]], Field(max_length=TAGS_MAX)] | None = None
