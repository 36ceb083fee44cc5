"""NeMo Platform request models: the seed's rules, refused before anything is sent, and the wire format."""

from __future__ import annotations

import pytest

from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.nemo import CreateModelEntity, entity_differences

FULL = {
    "name": "support-bot_v1.2",
    "project": "team-a/support",
    "description": "full-weight SFT",
    "fileset": "default/support-bot-ckpt",
    "finetuning_type": "all_weights",
    "base_model": "default/llama-3.1-8b-instruct",
    "api_endpoint": {"url": "http://nim.internal:8000/v1", "model_id": "support-bot", "format": "openai"},
    "backend_format": "ANTHROPIC_MESSAGES",
    "prompt": {"system_prompt": "Be brief.", "inference_params": {"temperature": 0.2}},
    "custom_fields": {"team": "a"},
    "ownership": {"created_by": "ml-team"},
    "model_providers": ["default/nim-provider"],
}


def test_minimal_body_sends_trust_remote_code_false():
    assert validate_request(CreateModelEntity, {"name": "mx"}).wire() == {"name": "mx", "trust_remote_code": False}


def test_full_body_is_snake_case_and_unchanged_on_the_wire():
    wire = validate_request(CreateModelEntity, FULL).wire()
    assert wire == FULL | {"trust_remote_code": False}  # URL sent as given, no trailing slash added


def test_trust_remote_code_true_only_when_set_to_true():
    assert validate_request(CreateModelEntity, {"name": "mx", "trust_remote_code": True}).wire()["trust_remote_code"]


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"name": "has space"}, "name", "string_pattern_mismatch"),
        ({"name": "a/b"}, "name", "string_pattern_mismatch"),
        ({"name": "x" * 64}, "name", "string_pattern_mismatch"),
        ({"name": "support-llm-20260101T000000"}, "name", "string_pattern_mismatch"),
        ({"name": ""}, "name", "string_pattern_mismatch"),
        ({"project": "team a"}, "project", "string_pattern_mismatch"),
        ({"project": "p" * 256}, "project", "string_too_long"),
        ({"description": "d" * 1001}, "description", "string_too_long"),
        ({"fileset": "No-Workspace"}, "fileset", "string_pattern_mismatch"),
        ({"fileset": "ws/ckpt--2"}, "fileset", "string_pattern_mismatch"),
        ({"fileset": "a/b/c"}, "fileset", "string_pattern_mismatch"),
        ({"backend_format": "openai_chat"}, "backend_format", "enum"),
        ({"finetuning_type": "full"}, "finetuning_type", "enum"),
        ({"model_providers": ["ws/Provider"]}, "model_providers.0", "string_pattern_mismatch"),
        ({"api_endpoint": {"url": "not a url"}}, "api_endpoint.url", "url_parsing"),
        ({"api_endpoint": {"uri": "http://x"}}, "api_endpoint.uri", "extra_forbidden"),
        ({"prompt": {"system": "typo"}}, "prompt.system", "extra_forbidden"),
        ({"trust_remote_code": "yes"}, "trust_remote_code", "bool_type"),
        ({"trust_remote_code": 1}, "trust_remote_code", "bool_type"),
        ({"spec": {"family": "llama"}}, "spec", "extra_forbidden"),
    ],
)
def test_invalid_bodies_are_refused_naming_field_and_rule(changes, field, rule):
    with pytest.raises(InvalidRequest) as caught:
        validate_request(CreateModelEntity, {"name": "mx"} | changes)
    message = str(caught.value)
    assert "nothing was sent" in message
    assert f"{field}: " in message and f"[{rule}]" in message


@pytest.mark.parametrize("name", ["ab", "support-llm-20260101t000000", "m@v1+x_y.z", "x" * 63])
def test_todays_name_rule_accepts_what_the_platform_accepts(name):
    assert validate_request(CreateModelEntity, {"name": name}).name == name


@pytest.mark.parametrize("name", ["a", "Ab", "1a", "a--b", "a-", "x" * 64, "support-llm-20260101T000000"])
def test_todays_name_rule_refuses_what_the_platform_answers_422(name):
    with pytest.raises(InvalidRequest, match=r"name: String should match pattern"):
        validate_request(CreateModelEntity, {"name": name})


def test_bare_fileset_and_model_provider_names_are_valid():
    body = validate_request(CreateModelEntity, {"name": "mx", "fileset": "ckpt", "model_providers": ["nim"]})
    assert body.fileset == "ckpt" and body.model_providers == ["nim"]


def test_the_older_rule_is_allowed_only_when_the_connection_asks_for_it():
    for name in ("a", "A-b_c.9", "x" * 255, "modèle"):  # 0.3.0's \w is Unicode-aware
        body = {"name": name, "fileset": "WS/Ckpt"}
        assert validate_request(CreateModelEntity, body, {"name_rule": "0.3"}).name == name
        with pytest.raises(InvalidRequest):
            validate_request(CreateModelEntity, body)


# -- comparing a request with an existing entity ------------------------------------------------------
def entity_for(body: dict) -> dict:
    """An entity as the platform answers it: every field present, defaults filled, URL normalised."""
    entity = {
        "id": "model-1",
        "workspace": "default",
        "created_at": "2025-01-01T00:00:00Z",
        "project": None,
        "description": None,
        "spec": {"family": "llama"},
        "finetuning_type": None,
        "fileset": None,
        "base_model": None,
        "api_endpoint": None,
        "backend_format": None,
        "adapters": [],
        "prompt": None,
        "custom_fields": {},
        "ownership": None,
        "model_providers": [],
        "trust_remote_code": False,
    } | body
    if entity["api_endpoint"]:
        entity["api_endpoint"] = {"url": None, "model_id": None, "api_key": None, "format": None} | dict(
            entity["api_endpoint"]
        )
    return entity


def test_an_entity_made_from_the_same_request_does_not_differ():
    request = validate_request(CreateModelEntity, FULL)
    entity = entity_for(FULL | {"api_endpoint": FULL["api_endpoint"] | {"url": "http://nim.internal:8000/v1/"}})
    assert entity_differences(request, entity) == []


def test_differences_name_the_fields_including_nested_ones():
    request = validate_request(CreateModelEntity, FULL | {"custom_fields": {"airflow_idempotency_key": "k1"}})
    entity = entity_for(
        FULL
        | {
            "description": "something else",
            "custom_fields": {"airflow_idempotency_key": "k2"},
            "trust_remote_code": True,
        }
    )
    assert entity_differences(request, entity) == [
        "description",
        "custom_fields.airflow_idempotency_key",
        "trust_remote_code",
    ]


def test_only_what_the_request_sets_is_compared():
    request = validate_request(CreateModelEntity, {"name": "mx", "custom_fields": {"k": "v"}})
    filled_by_platform = {"ownership": {"created_by": "svc"}, "custom_fields": {"k": "v", "platform": "x"}}
    assert entity_differences(request, entity_for({"name": "mx"} | filled_by_platform)) == []
    assert entity_differences(request, entity_for({"name": "mx"})) == ["custom_fields.k"]


def test_trust_remote_code_on_the_entity_differs_from_a_request_without_it():
    request = validate_request(CreateModelEntity, {"name": "mx"})
    assert entity_differences(request, entity_for({"name": "mx", "trust_remote_code": True})) == ["trust_remote_code"]


def test_api_keys_are_never_compared():
    request = validate_request(CreateModelEntity, {"name": "mx", "api_endpoint": {"url": "http://x", "api_key": "k"}})
    assert entity_differences(request, entity_for({"name": "mx", "api_endpoint": {"url": "http://x"}})) == []


def test_what_the_platform_normalises_does_not_differ():
    """Issue 14 item 2: the platform stores api_endpoint.url through AnyUrl and coerces typed fields."""
    request = validate_request(
        CreateModelEntity,
        {
            "name": "mx",
            "api_endpoint": {"url": "HTTP://NIM.Internal:80/v1"},
            "prompt": {"inference_params": {"max_tokens": "256", "temperature": "0.5"}},
        },
    )
    stored = {
        "api_endpoint": {"url": "http://nim.internal/v1"},
        "prompt": {"inference_params": {"max_tokens": 256, "temperature": 0.5}},
    }
    assert entity_differences(request, entity_for({"name": "mx"} | stored)) == []
    other = stored | {"api_endpoint": {"url": "http://nim.other/v1"}}
    assert entity_differences(request, entity_for({"name": "mx"} | other)) == ["api_endpoint.url"]
