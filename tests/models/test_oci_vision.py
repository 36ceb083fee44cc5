"""CreateModelDetails: camelCase wire format of the seed page, snake_case in Python, limits refused."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

# The example body of the seed page (POST /20220125/models), values as published (placeholders).
SEED_BODY: dict[str, Any] = {
    "compartmentId": "{{compartment_ocid}}",
    "modelType": "quis Lorem laboris et sint",
    "projectId": "ocid1.aivisionproject.oc1.<PROJECT_OCID>",
    "trainingDataset": {"datasetType": "DATA_SCIENCE_LABELING"},
    "description": "The description of the Model.",
    "displayName": "",
    "freeformTags": {"nulla_d3": "dolor consequat eiusmod Excepteur"},
    "isQuickMode": False,
    "maxTrainingDurationInHours": 37758442.67807901,
    "modelVersion": "reprehenderit sed nisi ullamco",
    "testingDataset": {"datasetType": "DATA_SCIENCE_LABELING"},
    "validationDataset": {"datasetType": "OBJECT_STORAGE"},
}

COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaaexample"
PROJECT = "ocid1.aivisionproject.oc1.iad.amaaaaaaexample"
DATASET = "ocid1.datalabelingdataset.oc1.iad.amaaaaaaexample"
LABELING = {"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": DATASET}
BUCKET = {"dataset_type": "OBJECT_STORAGE", "namespace_name": "ns", "bucket_name": "images", "object_name": "a.jsonl"}


def valid(**overrides: Any) -> dict[str, Any]:
    return {
        "compartment_id": COMPARTMENT,
        "project_id": PROJECT,
        "model_type": "IMAGE_CLASSIFICATION",
        "training_dataset": LABELING,
    } | overrides


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidRequest) as info:
        validate_request(CreateModelDetails, data)
    return str(info.value)


def shape(value: Any) -> Any:
    """The keys of a JSON document, recursively (values dropped)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return type(value).__name__ if not isinstance(value, (int, float)) or isinstance(value, bool) else "number"


def test_every_field_goes_on_the_wire_under_the_seed_pages_camelcase_name():
    details = validate_request(
        CreateModelDetails,
        valid(
            training_dataset=LABELING,
            testing_dataset=LABELING,
            validation_dataset=BUCKET,
            description="The description of the Model.",
            display_name="defects",
            freeform_tags={"nulla_d3": "dolor"},
            is_quick_mode=False,
            max_training_duration_in_hours=2.5,
            model_version="1.0",
        ),
    )
    wire = details.wire()
    assert set(wire) == set(SEED_BODY)
    for name in ("trainingDataset", "testingDataset", "validationDataset"):
        assert wire[name]["datasetType"] == SEED_BODY[name]["datasetType"]
    assert wire["validationDataset"] == {
        "datasetType": "OBJECT_STORAGE",
        "namespaceName": "ns",
        "bucketName": "images",
        "objectName": "a.jsonl",
    }
    assert wire["trainingDataset"] == {"datasetType": "DATA_SCIENCE_LABELING", "datasetId": DATASET}
    assert shape({k: v for k, v in wire.items() if "Dataset" not in k}) == shape(
        {k: v for k, v in SEED_BODY.items() if "Dataset" not in k}
    )


def test_camelcase_and_snake_case_input_give_the_same_body_and_unset_fields_stay_off_the_wire():
    camel = {
        "compartmentId": COMPARTMENT,
        "projectId": PROJECT,
        "modelType": "OBJECT_DETECTION",
        "trainingDataset": {
            "datasetType": "OBJECT_STORAGE",
            "namespaceName": "ns",
            "bucketName": "b",
            "objectName": "o",
        },
    }
    snake = valid(
        model_type="OBJECT_DETECTION",
        training_dataset={
            "dataset_type": "OBJECT_STORAGE",
            "namespace_name": "ns",
            "bucket_name": "b",
            "object_name": "o",
        },
    )
    assert validate_request(CreateModelDetails, camel).wire() == validate_request(CreateModelDetails, snake).wire()
    assert validate_request(CreateModelDetails, camel).wire() == camel


def test_templated_strings_are_coerced_to_the_wire_types():
    wire = validate_request(
        CreateModelDetails, valid(is_quick_mode="true", max_training_duration_in_hours="0.5")
    ).wire()
    assert wire["isQuickMode"] is True
    assert wire["maxTrainingDurationInHours"] == 0.5


def test_the_seed_pages_placeholder_values_are_refused_field_by_field():
    message = refused(SEED_BODY)
    assert message.startswith("invalid CreateModelDetails, nothing was sent")
    for field in ("compartment_id", "project_id", "model_type", "display_name"):
        assert f"{field}: " in message, field
    assert "training_dataset.DATA_SCIENCE_LABELING.dataset_id: Field required" in message
    assert "validation_dataset.OBJECT_STORAGE.bucket_name: Field required" in message


@pytest.mark.parametrize(
    ("overrides", "where", "rule"),
    [
        (
            {"model_type": "IMAGE_CLASSIFICATION_MULTI_LABEL"},
            "model_type",
            "'IMAGE_CLASSIFICATION' or 'OBJECT_DETECTION'",
        ),
        ({"compartment_id": "compartment-1"}, "compartment_id", "should match pattern"),
        ({"project_id": "ocid1." + "a" * 260}, "project_id", "at most 255 characters"),
        ({"display_name": "x" * 256}, "display_name", "at most 255 characters"),
        ({"display_name": "   "}, "display_name", "at least 1 character"),
        ({"description": "d" * 401}, "description", "at most 400 characters"),
        ({"model_version": ""}, "model_version", "at least 1 character"),
        ({"max_training_duration_in_hours": 0}, "max_training_duration_in_hours", "greater than 0"),
        ({"max_training_duration_in_hours": -2}, "max_training_duration_in_hours", "greater than 0"),
        ({"max_training_duration_in_hours": float("inf")}, "max_training_duration_in_hours", "finite number"),
        ({"is_quick_mode": "sometimes"}, "is_quick_mode", "valid boolean"),
        ({"freeform_tags": {"k" * 101: "v"}}, "freeform_tags", "at most 100 characters"),
        ({"freeform_tags": {"k": "v" * 257}}, "freeform_tags.k", "at most 256 characters"),
        ({"freeform_tags": {f"k{i}": "v" for i in range(65)}}, "freeform_tags", "at most 64 items"),
        ({"training_dataset": {"dataset_type": "HTTP"}}, "training_dataset", "datasetType is required, one of"),
        ({"training_dataset": {"dataset_id": DATASET}}, "training_dataset", "datasetType is required, one of"),
        (
            {"testing_dataset": {"dataset_type": "OBJECT_STORAGE", "bucket_name": "b", "object_name": "o"}},
            "testing_dataset.OBJECT_STORAGE.namespace_name",
            "Field required",
        ),
        ({"training_dataset": LABELING | {"bucket": "x"}}, "training_dataset.DATA_SCIENCE_LABELING.bucket", "Extra"),
        ({"compartment": COMPARTMENT}, "compartment", "Extra inputs are not permitted"),
    ],
)
def test_limits_are_refused_before_sending_naming_field_and_rule(overrides, where, rule):
    message = refused(valid(**overrides))
    assert f"{where}" in message and rule in message, message


def test_required_fields_are_named():
    message = refused({})
    for field in ("compartment_id", "project_id", "model_type", "training_dataset"):
        assert f"{field}: Field required" in message


@pytest.mark.parametrize("dataset", [{"dataset_id": DATASET}, {"datasetType": "HTTP", "datasetId": DATASET}, "bucket"])
def test_a_training_dataset_without_a_known_dataset_type_is_refused_naming_the_field_and_its_values(dataset):
    with pytest.raises(InvalidRequest) as refused:
        validate_request(CreateModelDetails, valid(training_dataset=dataset))
    assert str(refused.value) == (
        "invalid CreateModelDetails, nothing was sent: training_dataset: datasetType is required, one of "
        "'DATA_SCIENCE_LABELING', 'OBJECT_STORAGE' [dataset_type]"
    )
