"""MLflow request models: seed limits, MLflow's per-call limits, and refusal of what a server would
silently mangle (bad metric values, unknown run statuses)."""

from __future__ import annotations

import pytest

from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.mlflow import (
    AIDP_RULES,
    MLFLOW_2_RULES,
    MLFLOW_3_RULES,
    MLFLOW_UNKNOWN_RULES,
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    CreateRunRequest,
    LogBatchRequest,
    Metric,
    MlflowServerRules,
    Param,
    UpdateRunRequest,
    server_context,
    tag_list,
)

VERSION = {"name": "model", "source": "runs:/abc/model"}
AIDP = server_context(AIDP_RULES)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("name", "", "at least 1"),
        ("name", "n" * 256, "at most 255"),
        ("source", "", "at least 1"),
        ("source", "s" * 501, "at most 500"),
        ("run_id", "", "at least 1"),
        ("run_id", "r" * 33, "at most 32"),
        ("model_id", "m" * 37, "at most 36"),
        ("run_link", "l" * 501, "at most 500"),
        ("description", "d" * 5001, "at most 5000"),
        ("tags", [{"key": f"k{i}", "value": "v"} for i in range(21)], "at most 20"),
        ("tags", [{"key": "", "value": "v"}], "at least 1"),
        ("tags", [{"key": "k" * 251, "value": "v"}], "at most 250"),
        ("tags", [{"key": "k", "value": "v" * 8001}], "at most 8000"),
        ("tags", [{"key": "#", "value": "v"}], "may only contain"),
        ("tags", [{"key": "..", "value": "v"}], "resolve to another name"),
    ],
)
def test_model_version_limits_name_the_field_and_rule(field, value, rule):
    with pytest.raises(InvalidRequest) as caught:
        validate_request(CreateModelVersionRequest, VERSION | {field: value}, context=AIDP)
    message = str(caught.value)
    assert field in message and rule in message and "nothing was sent" in message


def test_model_version_at_the_limits_is_accepted_and_wired_snake_case():
    request = validate_request(
        CreateModelVersionRequest,
        {
            "name": "n" * 255,
            "source": "s" * 500,
            "run_id": "r" * 32,
            "model_id": "m" * 36,
            "description": "d" * 5000,
            "tags": [{"key": "k" * 250, "value": "v" * 8000}] + [{"key": f"k{i}", "value": i} for i in range(19)],
        },
        context=AIDP,
    )
    wire = request.wire()
    assert set(wire) == {"name", "source", "run_id", "model_id", "description", "tags"}
    assert wire["tags"][1] == {"key": "k0", "value": "0"}  # a number given as a tag value is sent as a string


def test_unknown_fields_are_refused():
    with pytest.raises(InvalidRequest, match="runId"):
        validate_request(CreateModelVersionRequest, VERSION | {"runId": "x"})


@pytest.mark.parametrize("value", ["abc", None, True, float("nan"), float("inf"), "nan"])
def test_a_metric_must_be_a_finite_number(value):
    with pytest.raises(InvalidRequest, match=r"metrics\.0\.value"):
        validate_request(LogBatchRequest, {"run_id": "r", "metrics": [{"key": "m", "value": value}]})


def test_a_numeric_string_metric_is_converted_and_gets_a_timestamp():
    metric = Metric(key="precision", value="0.91")
    assert metric.value == pytest.approx(0.91)
    assert metric.timestamp > 1_600_000_000_000 and metric.step == 0


def test_param_values_are_at_most_6000_characters_and_become_strings():
    assert Param(key="k", value=3).value == "3"
    Param(key="k", value="x" * 6000)
    with pytest.raises(InvalidRequest, match="at most 6000 are allowed: MLflow would silently truncate it to 6000"):
        validate_request(LogBatchRequest, {"run_id": "r", "params": [{"key": "k", "value": "x" * 6001}]})


def test_run_tag_values_over_8000_characters_are_refused_saying_mlflow_would_truncate_them():
    with pytest.raises(InvalidRequest, match=r"tags\.0\.value: .*MLflow would silently truncate it to 8000"):
        validate_request(LogBatchRequest, {"run_id": "r", "tags": [{"key": "k", "value": "x" * 8001}]})


# -- the server in hand ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "rules"),
    [("3.17.2", MLFLOW_3_RULES), ("3.0.0rc1", MLFLOW_3_RULES), ("4.1.0", MLFLOW_3_RULES), ("2.22.5", MLFLOW_2_RULES)],
)
def test_the_server_version_picks_the_rules(version, rules):
    picked = MlflowServerRules.of_mlflow(version)
    assert picked.server == f"MLflow {version}"
    assert (picked.model_name_path_rule, picked.model_version_tag_value_length) == (
        rules.model_name_path_rule,
        rules.model_version_tag_value_length,
    )


@pytest.mark.parametrize("version", [None, "", "unknown", "<html>"])
def test_a_server_that_does_not_say_gets_both_majors_refusals(version):
    assert MlflowServerRules.of_mlflow(version) == MLFLOW_UNKNOWN_RULES


@pytest.mark.parametrize(
    ("name", "refused_on"),
    [
        ("a/b", {"MLflow 3.17.2", "unknown"}),
        ("a:b", {"MLflow 3.17.2", "unknown"}),
        ("../x", {"MLflow 3.17.2", "unknown"}),
        (" ", {"MLflow 3.17.2", "unknown"}),
        ("n" * 256, {"AIDP"}),
        ("n" * 257, {"MLflow 3.17.2", "MLflow 2.22.5", "unknown", "AIDP"}),
        ("a\"b'c", set()),
    ],
)
def test_registered_model_names_follow_the_server_in_hand(name, refused_on):
    servers = {
        "MLflow 3.17.2": MlflowServerRules.of_mlflow("3.17.2"),
        "MLflow 2.22.5": MlflowServerRules.of_mlflow("2.22.5"),
        "unknown": MLFLOW_UNKNOWN_RULES,
        "AIDP": AIDP_RULES,
    }
    refused = set()
    for label, rules in servers.items():
        try:
            validate_request(CreateRegisteredModelRequest, {"name": name}, context=server_context(rules))
        except InvalidRequest as exc:
            assert str(exc).startswith("invalid CreateRegisteredModelRequest, nothing was sent: name: ")
            refused.add(label)
    assert refused == refused_on
    validate_request(CreateRegisteredModelRequest, {"name": name or "x"})  # without a server: only an empty name


@pytest.mark.parametrize(("rules", "limit"), [(MLFLOW_2_RULES, 5000), (MLFLOW_3_RULES, 100_000), (AIDP_RULES, 8000)])
def test_model_version_tag_values_follow_the_server_in_hand(rules, limit):
    body = VERSION | {"tags": [{"key": "notes", "value": "n" * limit}]}
    validate_request(CreateModelVersionRequest, body, context=server_context(rules))
    body = VERSION | {"tags": [{"key": "notes", "value": "n" * (limit + 1)}]}
    with pytest.raises(InvalidRequest, match=rf"tags: .*'notes' has {limit + 1} characters; .* takes at most {limit}"):
        validate_request(CreateModelVersionRequest, body, context=server_context(rules))


def test_a_param_given_twice_with_two_values_is_refused():
    with pytest.raises(InvalidRequest, match="'lr' is given twice"):
        validate_request(
            LogBatchRequest, {"run_id": "r", "params": [{"key": "lr", "value": "1"}, {"key": "lr", "value": "2"}]}
        )


def test_run_status_is_checked_before_sending():
    # An open-source server answers 200 and ignores an unknown status: the model must refuse it.
    with pytest.raises(InvalidRequest, match="status"):
        validate_request(UpdateRunRequest, {"run_id": "r", "status": "DONE"})
    assert UpdateRunRequest(run_id="r", status="KILLED").wire() == {"run_id": "r", "status": "KILLED"}


def test_create_run_always_carries_a_start_time():
    assert CreateRunRequest(experiment_id="1").wire()["start_time"] > 1_600_000_000_000


def sizes(body: dict) -> tuple[int, int, int]:
    return len(body.get("metrics", [])), len(body.get("params", [])), len(body.get("tags", []))


def test_log_batch_splits_to_mlflow_limits():
    request = LogBatchRequest(
        run_id="r",
        metrics=[Metric(key=f"m{i}", value=i, timestamp=1) for i in range(2500)],
        params=[Param(key=f"p{i}", value="v") for i in range(150)],
        tags=[{"key": f"t{i}", "value": "v"} for i in range(120)],
    )
    chunks = list(request.chunks())
    assert [sizes(c) for c in chunks] == [(800, 100, 100), (930, 50, 20), (770, 0, 0)]
    assert all(c["run_id"] == "r" for c in chunks)
    assert [m["key"] for c in chunks for m in c.get("metrics", [])] == [f"m{i}" for i in range(2500)]


def test_log_batch_of_metrics_only_uses_1000_a_call():
    request = LogBatchRequest(run_id="r", metrics=[Metric(key="m", value=1, step=i) for i in range(2500)])
    assert [sizes(c) for c in request.chunks()] == [(1000, 0, 0), (1000, 0, 0), (500, 0, 0)]
    assert list(LogBatchRequest(run_id="r").chunks()) == []


def test_tags_may_be_a_mapping_or_a_list():
    assert tag_list({"a": 1}) == [{"key": "a", "value": 1}]
    assert tag_list([{"key": "a", "value": "1"}]) == [{"key": "a", "value": "1"}]
    assert tag_list(None) is None
