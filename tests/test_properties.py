"""Bad input, property-based: every create-request model refuses every invalid body before anything is sent,
with an error naming the field, and accepts every valid body, which round-trips to the seed page's wire format.

For the many examples: ``validate_request`` on generated bodies, and each operator's ``execute`` with HTTP and
connection reads forbidden (so "nothing was sent" is checked, not assumed). For a few: operators in a DAG run
against the sandbox, which counts every request that reaches it.

Wire format: camelCase for OCI, snake_case for HappyRobot, MLflow and NeMo; re-validating the wire dict gives
the same model; where the sandbox keeps the service's own validation (HappyRobot, OCI Vision, NeMo's request
model), that validation accepts the wire body too.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
import string
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic.alias_generators import to_camel

from airflow_provider_modelreg.models.base import InvalidRequest, RequestModel, validate_request
from airflow_provider_modelreg.models.happyrobot import CreateModelRequest
from airflow_provider_modelreg.models.mlflow import (
    AIDP_RULES,
    MLFLOW_3_RULES,
    CreateExperimentRequest,
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
    LogBatchRequest,
    UpdateRunRequest,
    server_context,
)
from airflow_provider_modelreg.models.nemo import BackendFormat, CreateModelEntity, FinetuningType
from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

# No example database, no patch files, and Hypothesis' own files in the work tree's ignored .hypothesis/ (not
# the temp directory: a test run leaves nothing behind outside the work tree).
set_hypothesis_home_dir(str(Path(__file__).resolve().parents[1] / ".hypothesis"))
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    # no_io only patches methods, so sharing it across examples is what is meant.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")

# The request fields each seed page documents, as they appear on the wire.
HAPPYROBOT_SEED = {"use_case_id", "name", "from_model_id", "train_sample_ids", "test_sample_ids", "explain_tools"}
# The seed's example body, plus definedTags (the SDK's CreateModelDetails has it; the seed's example omits it).
OCI_SEED = {
    "compartmentId",
    "modelType",
    "projectId",
    "trainingDataset",
    "testingDataset",
    "validationDataset",
    "description",
    "displayName",
    "freeformTags",
    "definedTags",
    "isQuickMode",
    "maxTrainingDurationInHours",
    "modelVersion",
}
OCI_DATASET_KEYS = {"datasetType", "datasetId", "namespaceName", "bucketName", "objectName"}
MLFLOW_RUN_SEED = {"experiment_id", "run_name", "start_time", "tags"}
MLFLOW_VERSION_SEED = {"name", "source", "run_id", "model_id", "run_link", "description", "tags"}
NEMO_SEED = {
    "name",
    "project",
    "description",
    "spec",
    "finetuning_type",
    "fileset",
    "base_model",
    "api_endpoint",
    "backend_format",
    "prompt",
    "custom_fields",
    "ownership",
    "model_providers",
    "trust_remote_code",
}


# -- shared assertions ---------------------------------------------------------------------------------------
def assert_refused_naming(
    model: type[RequestModel], body: dict[str, Any], field: str, context: dict[str, Any] | None = None
) -> str:
    with pytest.raises(InvalidRequest) as refused:
        validate_request(model, body, context=context)
    message = str(refused.value)
    assert message.startswith(f"invalid {model.__name__}, nothing was sent: ")
    named = re.search(rf"(?:sent: |; ){re.escape(field)}[.:]", message)
    assert named, f"the error does not name {field!r}: {message}"
    return message


def assert_round_trip(
    model: type[RequestModel], body: dict[str, Any], key_rule: re.Pattern[str], context: dict[str, Any] | None = None
) -> dict[str, Any]:
    built = validate_request(model, body, context=context)
    wire = built.wire()
    assert json.loads(json.dumps(wire)) == wire, "the wire body is plain JSON"
    assert all(key_rule.match(k) for k in wire), f"wire keys not in the expected case: {sorted(wire)}"
    assert model.model_validate(wire, context=context) == built
    assert validate_request(model, wire, context=context) == built
    return wire


def replace(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    return body | {field: value}


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


# -- generic strategies ------------------------------------------------------------------------------------
printable = st.text(alphabet=string.ascii_letters + string.digits + " _-./:é中", max_size=40)
nonblank = printable.filter(lambda s: s.strip() != "")
blank = st.sampled_from(["", " ", "\t", "  \n "])
not_a_string = st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.none())
unknown_key = st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True)


def too_long(limit: int) -> st.SearchStrategy[str]:
    return st.integers(min_value=limit + 1, max_value=limit + 50).map(lambda n: "x" * n)


def at_most(limit: int, min_size: int = 0) -> st.SearchStrategy[str]:
    # Mostly short; sometimes exactly at the limit.
    return st.one_of(
        st.text(alphabet=string.ascii_letters + " -_", min_size=min_size, max_size=min(limit, 30)),
        st.just("y" * limit),
    )


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


# == HappyRobot: CreateModelRequest ===========================================================================
happyrobot_valid = st.fixed_dictionaries(
    {
        "use_case_id": nonblank,
        "name": nonblank,
        "from_model_id": st.text(alphabet=string.hexdigits.lower(), min_size=24, max_size=24),
        "train_sample_ids": st.lists(nonblank, min_size=1, max_size=4),
        "test_sample_ids": st.lists(nonblank, max_size=4),
    },
    optional={"explain_tools": st.booleans()},
)

happyrobot_invalid = st.one_of(
    st.tuples(st.just("use_case_id"), st.one_of(blank, not_a_string)),
    st.tuples(st.just("name"), st.one_of(blank, not_a_string)),
    st.tuples(
        st.just("from_model_id"),
        st.one_of(st.text(max_size=23), st.text(min_size=25, max_size=40), not_a_string),
    ),
    st.tuples(st.just("train_sample_ids"), st.one_of(st.just([]), st.lists(blank, min_size=1, max_size=2))),
    st.tuples(st.just("test_sample_ids"), st.one_of(st.none(), st.lists(blank, min_size=1, max_size=2))),
    st.tuples(st.just("explain_tools"), st.sampled_from(["maybe", "2", [], {}, 7])),
)


@SETTINGS
@given(body=happyrobot_valid)
def test_happyrobot_valid_bodies_round_trip_to_the_seed_format(body):
    from airflow_provider_modelreg.sandbox.happyrobot import _validate

    wire = assert_round_trip(CreateModelRequest, body, SNAKE)
    assert HAPPYROBOT_SEED - {"explain_tools"} <= set(wire) <= HAPPYROBOT_SEED
    assert wire["explain_tools"] is body.get("explain_tools", True)  # the seed's default: true
    assert _validate(wire) == []  # what the sandbox's HappyRobot accepts


@SETTINGS
@given(body=happyrobot_valid, bad=happyrobot_invalid)
def test_happyrobot_invalid_bodies_are_refused_naming_the_field(body, bad):
    field, value = bad
    assert_refused_naming(CreateModelRequest, replace(body, field, value), field)


@SETTINGS
@given(body=happyrobot_valid, data=st.data())
def test_happyrobot_missing_and_unknown_fields_are_refused(body, data):
    missing = data.draw(st.sampled_from(sorted(HAPPYROBOT_SEED - {"explain_tools"})))
    assert_refused_naming(CreateModelRequest, without(body, missing), missing)
    extra = data.draw(unknown_key.filter(lambda k: k not in HAPPYROBOT_SEED))
    assert_refused_naming(CreateModelRequest, body | {extra: "x"}, extra)


# == OCI Vision: CreateModelDetails ===========================================================================
ocid_part = st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=12)


def ocids(kind: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda realm, region, unique: f"ocid1.{kind}.{realm}.{region}.{unique}",
        st.sampled_from(["oc1", "oc2"]),
        st.sampled_from(["", "iad", "phx", "eu-frankfurt-1"]),
        st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=60),
    )


bad_ocids = st.one_of(
    st.sampled_from(["", "not-an-ocid", "ocid2.compartment.oc1..x", "ocid1.compartment", "ocid1.x.oc1..a b"]),
    st.just("ocid1.compartment.oc1.." + "a" * 250),
    not_a_string,
)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def spelled(body: dict[str, Any], camel: bool) -> dict[str, Any]:
    """Input keys in snake_case (Python names) or camelCase (the wire names): both are accepted."""
    return {to_camel(k): v for k, v in body.items()} if camel else body


dataset = st.one_of(
    st.builds(
        lambda ocid, camel: spelled({"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": ocid}, camel),
        ocids("datalabelingdataset"),
        st.booleans(),
    ),
    st.builds(
        lambda ns, bucket, obj, camel: spelled(
            {"dataset_type": "OBJECT_STORAGE", "namespace_name": ns, "bucket_name": bucket, "object_name": obj},
            camel,
        ),
        nonblank,
        nonblank,
        nonblank,
        st.booleans(),
    ),
)
tag_key = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=100)
oci_valid = st.builds(
    lambda body, camel: spelled(drop_none(body), camel),
    st.fixed_dictionaries(
        {
            "compartment_id": ocids("compartment"),
            "project_id": ocids("aivisionproject"),
            "model_type": st.sampled_from(["IMAGE_CLASSIFICATION", "OBJECT_DETECTION"]),
            "training_dataset": dataset,
            "testing_dataset": optional(dataset),
            "validation_dataset": optional(dataset),
            "display_name": optional(at_most(255, min_size=1).filter(lambda s: s.strip())),
            "description": optional(at_most(400)),
            "model_version": optional(nonblank),
            "is_quick_mode": optional(st.booleans()),
            "max_training_duration_in_hours": optional(
                st.floats(min_value=0, max_value=1e6, exclude_min=True, allow_nan=False, allow_infinity=False)
            ),
            "freeform_tags": optional(st.dictionaries(tag_key, at_most(256), max_size=4)),
            "defined_tags": optional(
                st.dictionaries(
                    tag_key, st.dictionaries(tag_key, st.one_of(printable, st.integers(), st.booleans())), max_size=3
                )
            ),
        }
    ),
    st.booleans(),
)

oci_invalid = st.one_of(
    st.tuples(st.just("compartment_id"), bad_ocids),
    st.tuples(st.just("project_id"), bad_ocids),
    st.tuples(st.just("model_type"), st.sampled_from(["image_classification", "SEGMENTATION", "", 3])),
    st.tuples(
        st.just("training_dataset"),
        st.sampled_from(
            [
                {"dataset_type": "S3", "dataset_id": "x"},
                {"dataset_type": "DATA_SCIENCE_LABELING"},
                {"dataset_type": "DATA_SCIENCE_LABELING", "dataset_id": "not-an-ocid"},
                {"dataset_type": "OBJECT_STORAGE", "namespace_name": "ns", "bucket_name": "b"},
                {"dataset_id": "ocid1.datalabelingdataset.oc1.iad.x"},
                "a dataset",
            ]
        ),
    ),
    st.tuples(st.just("testing_dataset"), st.just({"datasetType": "OBJECT_STORAGE", "namespaceName": " "})),
    st.tuples(st.just("display_name"), st.one_of(blank, too_long(255))),
    st.tuples(st.just("description"), too_long(400)),
    st.tuples(st.just("model_version"), st.one_of(blank, too_long(255))),
    st.tuples(st.just("is_quick_mode"), st.sampled_from(["maybe", 2, []])),
    st.tuples(
        st.just("max_training_duration_in_hours"),
        st.one_of(st.floats(max_value=0), st.sampled_from([float("nan"), float("inf"), "long"])),
    ),
    st.tuples(
        st.just("freeform_tags"),
        st.one_of(
            st.just({f"k{i}": "v" for i in range(65)}),
            st.just({"": "v"}),
            st.just({"k" * 101: "v"}),
            st.just({"k": "v" * 257}),
        ),
    ),
)


@SETTINGS
@given(body=oci_valid)
def test_oci_vision_valid_bodies_round_trip_to_camel_case(body):
    from airflow_provider_modelreg.sandbox.oci_vision import _validate

    wire = assert_round_trip(CreateModelDetails, body, CAMEL)
    assert {"compartmentId", "projectId", "modelType", "trainingDataset"} <= set(wire) <= OCI_SEED
    for name in ("trainingDataset", "testingDataset", "validationDataset"):
        if name in wire:
            assert set(wire[name]) <= OCI_DATASET_KEYS and "datasetType" in wire[name]
    assert _validate(wire) == []  # what the sandbox's Vision accepts


@SETTINGS
@given(body=oci_valid, bad=oci_invalid, camel=st.booleans())
def test_oci_vision_invalid_bodies_are_refused_naming_the_python_field(body, bad, camel):
    field, value = bad
    snake_body = {k: v for k, v in body.items() if k not in (field, to_camel(field))}
    # Whichever spelling the bad value comes in, the error names the Python (snake_case) field.
    assert_refused_naming(CreateModelDetails, snake_body | {to_camel(field) if camel else field: value}, field)


@SETTINGS
@given(body=oci_valid, data=st.data())
def test_oci_vision_missing_and_unknown_fields_are_refused(body, data):
    missing = data.draw(st.sampled_from(["compartment_id", "project_id", "model_type", "training_dataset"]))
    assert_refused_naming(
        CreateModelDetails, {k: v for k, v in body.items() if k not in (missing, to_camel(missing))}, missing
    )
    extra = data.draw(unknown_key.filter(lambda k: to_camel(k) not in OCI_SEED))
    assert_refused_naming(CreateModelDetails, body | {extra: "x"}, extra)


# == MLflow: runs/create, runs/log-batch, runs/update, experiments/create, registered models, model versions ===
# MLflow's key rule: these characters, and the key must not change as a normalised path ("a/../b", "/a").
mlflow_key = st.text(alphabet=string.ascii_letters + string.digits + "_-. /:", min_size=1, max_size=40).filter(
    lambda key: posixpath.normpath(key) == key and not key.startswith(("/", "..")) and key != "."
)
mlflow_tags = st.lists(st.fixed_dictionaries({"key": mlflow_key, "value": at_most(8000)}), max_size=4)
run_valid = st.fixed_dictionaries(
    {"experiment_id": st.text(alphabet=string.digits, min_size=1, max_size=8)},
    optional={
        "run_name": at_most(250),
        "start_time": st.integers(min_value=0, max_value=2**53),
        "tags": mlflow_tags,
    },
)
run_invalid = st.one_of(
    st.tuples(st.just("experiment_id"), st.one_of(st.just(""), st.none(), st.just([]))),
    st.tuples(st.just("run_name"), too_long(250)),
    st.tuples(st.just("start_time"), st.one_of(st.integers(max_value=-1), st.sampled_from(["soon", 1.5]))),
    st.tuples(
        st.just("tags"),
        st.sampled_from(
            [[{"key": "", "value": "v"}], [{"key": "k" * 251, "value": "v"}], [{"key": "k", "value": "v" * 8001}]]
        ),
    ),
)

metric = st.fixed_dictionaries(
    {
        "key": mlflow_key,
        "value": st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(min_value=-(2**53), max_value=2**53),
            st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),  # templated: a numeric string
        ),
    },
    optional={"timestamp": st.integers(min_value=0, max_value=2**53), "step": st.integers(-100, 10**6)},
)
param = st.fixed_dictionaries({"key": mlflow_key, "value": st.one_of(at_most(6000), st.integers(), st.booleans())})
log_valid = st.fixed_dictionaries(
    {"run_id": st.text(alphabet=string.hexdigits, min_size=1, max_size=32)},
    optional={
        "metrics": st.lists(metric, max_size=5),
        "params": st.lists(param, max_size=5, unique_by=lambda p: p["key"]),
        "tags": mlflow_tags,
    },
)
log_invalid = st.one_of(
    st.tuples(st.just("run_id"), st.sampled_from(["", None])),
    st.tuples(
        st.just("metrics"),
        st.sampled_from(
            [
                [{"key": "m", "value": float("nan")}],
                [{"key": "m", "value": float("inf")}],
                [{"key": "m", "value": True}],
                [{"key": "m", "value": "high"}],
                [{"key": "", "value": 1.0}],
                [{"key": "m", "value": 1.0, "timestamp": -1}],
                [{"key": "m", "value": 1.0, "step": 1.5}],
            ]
        ),
    ),
    st.tuples(
        st.just("params"), st.sampled_from([[{"key": "p", "value": "v" * 6001}], [{"key": "k" * 251, "value": 1}]])
    ),
    st.tuples(st.just("tags"), st.just([{"key": "t", "value": "v" * 8001}])),
)


def _is_model_name(name: str) -> bool:
    from airflow_provider_modelreg.models.mlflow import registered_model_name

    try:
        registered_model_name(name)
    except ValueError:
        return False
    return True


# The seed page's limits are the AI Data Platform's (names 1..255, tag values 8000); with MLflow 3.x's name
# rule (no blank, no '/' or ':') the valid names suit every server. tests/models/test_mlflow_vendor_rules.py
# holds each server's rules against MLflow's own functions.
AIDP = server_context(AIDP_RULES)
MLFLOW_3 = server_context(MLFLOW_3_RULES)
mlflow_model_name = at_most(255, min_size=1).filter(_is_model_name)
version_valid = st.fixed_dictionaries(
    {"name": mlflow_model_name, "source": at_most(500, min_size=1)},
    optional={
        "run_id": st.text(alphabet=string.hexdigits, min_size=1, max_size=32),
        "model_id": at_most(36),
        "run_link": at_most(500),
        "description": at_most(5000),
        "tags": st.lists(st.fixed_dictionaries({"key": mlflow_key, "value": at_most(8000)}), max_size=20),
    },
)
version_invalid = st.one_of(
    st.tuples(st.just("name"), st.one_of(st.just(""), too_long(255), st.none())),
    st.tuples(st.just("source"), st.one_of(st.just(""), too_long(500))),
    st.tuples(st.just("run_id"), st.one_of(st.just(""), too_long(32))),
    st.tuples(st.just("model_id"), too_long(36)),
    st.tuples(st.just("run_link"), too_long(500)),
    st.tuples(st.just("description"), too_long(5000)),
    st.tuples(
        st.just("tags"),
        st.one_of(
            st.just([{"key": f"k{i}", "value": "v"} for i in range(21)]),
            st.just([{"key": "", "value": "v"}]),
            st.just([{"key": "k" * 251, "value": "v"}]),
            st.just([{"key": "k", "value": "v" * 8001}]),
        ),
    ),
)


@SETTINGS
@given(body=run_valid)
def test_mlflow_run_bodies_round_trip_to_snake_case(body):
    wire = assert_round_trip(CreateRunRequest, body, SNAKE)
    assert (
        {"experiment_id", "start_time", "tags"} <= set(wire) <= MLFLOW_RUN_SEED
    )  # start_time is always sent (a server stores 0 without it)
    assert all(set(tag) == {"key", "value"} for tag in wire["tags"])


@SETTINGS
@given(body=run_valid, bad=run_invalid)
def test_mlflow_run_invalid_bodies_are_refused_naming_the_field(body, bad):
    field, value = bad
    assert_refused_naming(CreateRunRequest, replace(body, field, value), field)


@SETTINGS
@given(body=log_valid)
def test_mlflow_log_batch_bodies_round_trip_and_split_within_the_limits(body):
    wire = assert_round_trip(LogBatchRequest, body, SNAKE)
    assert set(wire) == {"run_id", "metrics", "params", "tags"}
    for point in wire["metrics"]:
        assert set(point) == {"key", "value", "timestamp", "step"} and isinstance(point["value"], float)
    assert all(isinstance(p["value"], str) for p in wire["params"])
    request = LogBatchRequest.model_validate(wire)
    for chunk in request.chunks():
        assert set(chunk) <= {"run_id", "metrics", "params", "tags"} and chunk["run_id"] == body["run_id"]


@SETTINGS
@given(body=log_valid, bad=log_invalid)
def test_mlflow_log_batch_invalid_bodies_are_refused_naming_the_field(body, bad):
    field, value = bad
    assert_refused_naming(LogBatchRequest, replace(body, field, value), field)


@SETTINGS
@given(key=mlflow_key, first=at_most(50), second=at_most(50))
def test_mlflow_a_param_given_twice_with_two_values_is_refused_naming_it(key, first, second):
    body = {"run_id": "r", "params": [{"key": key, "value": first}, {"key": key, "value": second}]}
    if first == second:
        validate_request(LogBatchRequest, body)
    else:
        with pytest.raises(InvalidRequest, match=re.escape(f"param {key!r} is given twice")):
            validate_request(LogBatchRequest, body)


@SETTINGS
@given(body=version_valid)
def test_mlflow_model_version_bodies_round_trip_to_the_seed_format(body):
    wire = assert_round_trip(CreateModelVersionRequest, body, SNAKE, AIDP)
    assert {"name", "source"} <= set(wire) <= MLFLOW_VERSION_SEED


@SETTINGS
@given(body=version_valid, bad=version_invalid)
def test_mlflow_model_version_invalid_bodies_are_refused_naming_the_field(body, bad):
    field, value = bad
    assert_refused_naming(CreateModelVersionRequest, replace(body, field, value), field, AIDP)


@SETTINGS
@given(
    name=at_most(255, min_size=1).filter(str.strip),
    description=optional(at_most(5000)),
    tags=optional(st.lists(st.fixed_dictionaries({"key": mlflow_key, "value": at_most(100)}), max_size=20)),
    bad=st.one_of(
        st.tuples(st.just("name"), st.one_of(st.just(""), st.just(" "), st.just("a/b"), too_long(256))),
        st.tuples(st.just("description"), too_long(5000)),
        st.tuples(st.just("tags"), st.just([{"key": f"k{i}"} for i in range(21)])),
    ),
)
def test_mlflow_registered_model_bodies(name, description, tags, bad):
    body = drop_none({"name": name, "description": description, "tags": tags})
    assert_round_trip(CreateRegisteredModelRequest, body, SNAKE, MLFLOW_3)
    field, value = bad
    assert_refused_naming(CreateRegisteredModelRequest, replace(body, field, value), field, MLFLOW_3)


@SETTINGS
@given(name=nonblank, tags=optional(mlflow_tags))
def test_mlflow_experiment_bodies(name, tags):
    assert_round_trip(CreateExperimentRequest, drop_none({"name": name, "tags": tags}), SNAKE)
    assert_refused_naming(CreateExperimentRequest, {"name": ""}, "name")
    assert_refused_naming(CreateExperimentRequest, {"name": name, "lifecycle": "x"}, "lifecycle")


@SETTINGS
@given(
    status=st.sampled_from(["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]),
    bad=st.sampled_from(["DONE", "finished", "INTERNAL_ERROR", ""]),
)
def test_mlflow_run_status_updates_take_only_the_statuses_a_client_may_set(status, bad):
    assert_round_trip(UpdateRunRequest, {"run_id": "r", "status": status, "end_time": 1}, SNAKE)
    # An open-source server silently ignores an unknown status, so the model refuses it.
    assert_refused_naming(UpdateRunRequest, {"run_id": "r", "status": bad}, "status")


# == NeMo Platform: CreateModelEntity =========================================================================
# Letters and decimal digits of any script are \w for pydantic's (Rust) regex and the platform alike.
name_chars = st.one_of(
    st.sampled_from(string.ascii_letters + string.digits + "_-."),
    st.characters(categories=("Lu", "Ll", "Nd")),
)


# Today's platform rule (nemo-platform >= 0.4.0, nemo-helix): a lowercase letter, then a-z 0-9 - @ . + _, 2..63
# characters, no "--", no trailing "-".
def _platform_name(head: str, rest: str) -> str:
    name = head + rest
    while "--" in name:
        name = name.replace("--", "-")
    return name + "x" if name.endswith("-") else name


entity_name = st.builds(
    _platform_name,
    st.sampled_from(string.ascii_lowercase),
    st.text(alphabet=string.ascii_lowercase + string.digits + "-@.+_", min_size=1, max_size=39),
)
project_urn = st.text(alphabet=st.one_of(name_chars, st.just("/")), min_size=1, max_size=40)
reference = st.builds(lambda ws, name: f"{ws}/{name}", entity_name, entity_name)
json_scalar = st.one_of(printable, st.integers(), st.booleans(), st.none())
api_endpoint = st.fixed_dictionaries(
    {},
    optional={
        "url": st.sampled_from(["http://nim.local:8000/v1", "https://api.example.com/v1/chat", "http://10.0.0.5"]),
        "model_id": printable,
        "api_key": printable,
        "format": st.sampled_from(["openai", "nvidia"]),
    },
)
prompt = st.fixed_dictionaries(
    {},
    optional={
        "system_prompt": printable,
        "icl_few_shot_examples": printable,
        "system_prompt_template": printable,
        "inference_params": st.fixed_dictionaries(
            {}, optional={"temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "max_tokens": st.integers(1, 4096)}
        ),
    },
)
nemo_valid = st.builds(
    drop_none,
    st.fixed_dictionaries(
        {
            "name": entity_name,
            "project": optional(project_urn),
            "description": optional(at_most(1000)),
            "fileset": optional(reference),
            "finetuning_type": optional(st.sampled_from([t.value for t in FinetuningType])),
            "base_model": optional(nonblank),
            "api_endpoint": optional(api_endpoint),
            "backend_format": optional(st.sampled_from([b.value for b in BackendFormat])),
            "prompt": optional(prompt),
            "custom_fields": optional(st.dictionaries(printable, json_scalar, max_size=4)),
            "ownership": optional(st.dictionaries(printable, json_scalar, max_size=3)),
            "model_providers": optional(st.lists(reference, max_size=3)),
            "trust_remote_code": optional(st.booleans()),
        }
    ),
)
bad_name = st.builds(
    lambda head, bad, tail: head + bad + tail,
    entity_name,
    # "²" is \w for Python's re but not for pydantic's (Rust) regex nor the platform's: refused.
    st.sampled_from([" ", "/", ":", "?", "#", "%", "\n", "²", "A", "--"]),
    st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=5),
)
nemo_invalid = st.one_of(
    st.tuples(st.just("name"), st.one_of(bad_name, st.just(""), too_long(255), st.just("abc\n"))),
    st.tuples(st.just("project"), st.one_of(st.sampled_from(["a b", "p@q", ""]), too_long(255))),
    st.tuples(st.just("description"), too_long(1000)),
    # A bare fileset name ("ckpt": the model's workspace) is valid on today's platform.
    st.tuples(st.just("fileset"), st.sampled_from(["a/b/c", "/b", "a/", "a b/c", "Ws/ckpt"])),
    st.tuples(st.just("finetuning_type"), st.sampled_from(["full", "LORA", "sft", ""])),
    st.tuples(st.just("base_model"), st.just("")),
    st.tuples(st.just("api_endpoint"), st.sampled_from([{"url": "not a url"}, {"token": "t"}, "http://x"])),
    st.tuples(st.just("backend_format"), st.sampled_from(["openai_chat", "OPENAI", "GEMINI"])),
    st.tuples(st.just("prompt"), st.just({"system": "x"})),
    st.tuples(st.just("model_providers"), st.sampled_from([["a/b/c"], "a/b", [3], ["Up/per"]])),
    # A strict boolean: a templated "true" or a 1 cannot switch on remote code.
    st.tuples(st.just("trust_remote_code"), st.sampled_from(["true", "yes", 1, "True", None])),
)


@SETTINGS
@given(body=nemo_valid)
def test_nemo_valid_bodies_round_trip_and_the_platforms_model_accepts_them(body):
    from airflow_provider_modelreg.sandbox.nemo import CreateModelEntityRequest

    wire = assert_round_trip(CreateModelEntity, body, SNAKE)
    assert set(wire) <= NEMO_SEED and "spec" not in wire  # the platform generates spec
    assert wire["trust_remote_code"] is body.get("trust_remote_code", False)  # always sent
    assert set(wire.get("api_endpoint", {})) <= {"url", "model_id", "api_key", "format"}
    assert set(wire.get("prompt", {})) <= {
        "system_prompt",
        "icl_few_shot_examples",
        "system_prompt_template",
        "inference_params",
    }
    platform = CreateModelEntityRequest.model_validate(wire)  # the sandbox's copy of the platform's model
    assert platform.name == wire["name"]


@SETTINGS
@given(body=nemo_valid, bad=nemo_invalid)
def test_nemo_invalid_bodies_are_refused_naming_the_field(body, bad):
    field, value = bad
    assert_refused_naming(CreateModelEntity, replace(body, field, value), field)


@SETTINGS
@given(body=nemo_valid, data=st.data())
def test_nemo_missing_name_spec_and_unknown_fields_are_refused(body, data):
    assert_refused_naming(CreateModelEntity, without(body, "name"), "name")
    assert_refused_naming(CreateModelEntity, body | {"spec": {"family": "llama"}}, "spec")
    extra = data.draw(unknown_key.filter(lambda k: k not in NEMO_SEED))
    assert_refused_naming(CreateModelEntity, body | {extra: 1}, extra)


# == through the operators: nothing is read or sent =========================================================
class NothingMayBeSent(AssertionError):
    pass


@pytest.fixture
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any HTTP call or connection read fails the test: validation must come first."""
    from airflow_provider_modelreg.http import ServiceClient
    from airflow_provider_modelreg.version_compat import BaseHook

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NothingMayBeSent("a request or connection read happened before validation")

    monkeypatch.setattr(ServiceClient, "request", refuse)
    monkeypatch.setattr(ServiceClient, "arequest", refuse)
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(refuse))


def task_context(task_id: str) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="props", task_id=task_id, run_id="manual__1", map_index=-1, try_number=1)
    return {"ti": ti, "dag_run": SimpleNamespace(run_after=dt.datetime.now(dt.timezone.utc))}


def assert_operator_refuses(build: Callable[[], Any], field: str) -> None:
    from airflow_provider_modelreg.version_compat import AirflowFailException

    with pytest.raises(AirflowFailException) as failed:  # fails the task at once: no retry can fix input
        build().execute(task_context("t"))
    assert re.search(rf"(?:sent: |; ){re.escape(field)}[.:]", str(failed.value)), str(failed.value)


@SETTINGS
@given(body=happyrobot_valid, bad=happyrobot_invalid)
def test_the_happyrobot_operator_refuses_before_any_call(no_io, body, bad):
    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

    field, value = bad
    arguments = replace(body, field, value)
    assert_operator_refuses(lambda: HappyRobotCreateModelOperator(task_id="t", conn_id="hr", **arguments), field)


@SETTINGS
@given(body=oci_valid.map(lambda b: {_snake(k): v for k, v in b.items()}), bad=oci_invalid)
def test_the_oci_vision_operator_refuses_before_any_call(no_io, body, bad):
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    field, value = bad
    arguments = replace(body, field, value)
    assert_operator_refuses(lambda: OCIVisionCreateModelOperator(task_id="t", conn_id="oci", **arguments), field)


@SETTINGS
@given(body=version_valid, bad=version_invalid.filter(lambda b: b[1] not in ("", None)))
def test_the_mlflow_model_version_operator_refuses_before_any_call(no_io, body, bad):
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator

    field, value = bad  # "" and None mean "not given" to this operator (templates render missing values so)
    arguments = replace(body, field, value)
    # The server's rules are the connection's to say (GET /version on plain MLflow): the seed's here.
    with pytest.MonkeyPatch.context() as patch:
        hook = SimpleNamespace(server_rules=AIDP_RULES)
        patch.setattr(MlflowCreateModelVersionOperator, "hook", property(lambda self: hook))
        assert_operator_refuses(lambda: MlflowCreateModelVersionOperator(task_id="t", conn_id="m", **arguments), field)


@SETTINGS
@given(bad=log_invalid.filter(lambda b: b[0] != "run_id"))
def test_the_mlflow_run_operator_refuses_before_any_call(no_io, bad):
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

    field, value = bad
    argument = {"metrics": "metrics", "params": "run_params", "tags": "tags"}[field]
    assert_operator_refuses(
        lambda: MlflowCreateRunOperator(task_id="t", conn_id="m", experiment_name="e", **{argument: value}), field
    )


@SETTINGS
@given(body=nemo_valid, bad=nemo_invalid)
def test_the_nemo_operator_refuses_before_any_call(no_io, body, bad):
    from airflow_provider_modelreg.hooks.nemo import NemoModelsHook

    # Which name rule applies is the connection's to say (read only when today's rule refuses): today's here.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NemoModelsHook, "name_context", property(lambda self: {}))
        _refuses_before_any_call(body, bad)


def _refuses_before_any_call(body: dict[str, Any], bad: tuple[str, Any]) -> None:
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

    field, value = bad
    arguments = replace(body, field, value) | {"workspace": "default"}
    assert_operator_refuses(lambda: NemoCreateModelOperator(task_id="t", conn_id="n", **arguments), field)


# == in a DAG, against the sandbox: the task fails on try 1 (no retry) and no request reaches the service ====
@pytest.mark.integration
def test_invalid_arguments_fail_every_operator_in_a_dag_without_a_retry_or_a_request(
    run_dag, sandbox, happyrobot_conn, oci_vision_conn, aidp_conn, nemo_conn, capfd
):
    from airflow.sdk import DAG

    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
    from airflow_provider_modelreg.sandbox.faults import FaultRule

    seen = FaultRule(kind="latency", delay=0.0, count=None)  # counts every request that reaches the sandbox
    sandbox.sandbox.faults.rules.append(seen)
    with DAG(
        "properties_bad_input",
        schedule=None,
        start_date=dt.datetime(2024, 1, 1),
        default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=0)},
    ) as dag:
        HappyRobotCreateModelOperator(
            task_id="happyrobot",
            conn_id="hr",
            use_case_id="uc",
            name="bot",
            from_model_id="too-short",
            train_sample_ids=["s"],
            test_sample_ids=[],
        )
        OCIVisionCreateModelOperator(
            task_id="oci_vision",
            conn_id="vision",
            compartment_id="ocid1.compartment.oc1..aaaa",
            project_id="not-an-ocid",
            model_type="OBJECT_DETECTION",
            training_dataset={"datasetType": "DATA_SCIENCE_LABELING", "datasetId": "ocid1.dataset.oc1.iad.x"},
        )
        MlflowCreateRunOperator(
            task_id="mlflow_run", conn_id="aidp", experiment_name="e", metrics={"loss": "{{ 'not a number' }}"}
        )
        MlflowCreateModelVersionOperator(task_id="mlflow_version", conn_id="aidp", name="m", source="s" * 501)
        NemoCreateModelOperator(task_id="nemo", conn_id="nemo", name="has space")
    result = run_dag(dag, {"hr": happyrobot_conn, "vision": oci_vision_conn, "aidp": aidp_conn, "nemo": nemo_conn})
    assert result.state == "failed"
    assert set(result.task_states().values()) == {"failed"}
    assert {task: result.try_number(task) for task in result.task_states()} == dict.fromkeys(result.task_states(), 1)
    assert seen.fired == 0, "a request reached the sandbox"
    out = capfd.readouterr()
    logs = out.out + out.err
    for expected in (
        "invalid CreateModelRequest, nothing was sent: from_model_id:",
        "invalid CreateModelDetails, nothing was sent: project_id:",
        "invalid LogBatchRequest, nothing was sent: metrics.0.value:",
        "invalid CreateModelVersionRequest, nothing was sent: source:",
        "invalid CreateModelEntity, nothing was sent: name:",
    ):
        assert expected in logs
