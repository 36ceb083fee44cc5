"""The provider refuses what it would send to NVIDIA's Models API exactly when NVIDIA's server code refuses it
(nemo-platform 0.6.0's request classes and functions, imported in ``.venv-nemo-server`` by a subprocess oracle,
tests/models/nemo_validation_oracle.py): model-entity create bodies, the path parameters (workspace, model name)
and the ``fileset`` reference. Hypothesis draws them. The provider sends no PATCH (update) body: an existing
entity that differs fails the task (``entity_differences``) and is never changed.

Where the provider is deliberately stricter than that class, the field is listed in ``STRICTER`` with the rule's
source: the server refuses those later (a 400 after its own lookup), so the provider refuses them before
anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_modelreg.hooks.nemo import models_path
from airflow_provider_modelreg.models.base import InvalidRequest, RequestModel
from airflow_provider_modelreg.models.nemo import (
    BackendFormat,
    CreateModelEntity,
    FinetuningType,
    ModelEntityRef,
    validate_names,
)

REPO = Path(__file__).parents[2]
SERVER_PYTHON = Path(os.environ.get("MODELREG_NEMO_SERVER_VENV", REPO / ".venv-nemo-server")) / "bin" / "python"
ORACLE = Path(__file__).parent / "nemo_validation_oracle.py"

# Fields the provider checks harder than the request class, and why (the vendor's own later refusal).
STRICTER = {
    # The class takes any string; the create route then parses the reference ('name' or 'workspace/name') and
    # looks the fileset up, answering 400 (nemo-platform 0.6.0 models API) for one it cannot read or find. That
    # rule is compared on its own below (test_a_fileset_reference_is_refused_exactly_when_...).
    "fileset": "models API create route: parse_entity_ref + fileset lookup, 400",
    # Each provider is a 'workspace/name' resource name (the class's own description); the server resolves them.
    "model_providers": "CreateModelEntityRequest.model_providers description: ModelProvider workspace/name",
    # An empty base model names nothing; the class takes "".
    "base_model": "provider rule: an empty reference is refused before sending",
    # The class coerces "yes"/1 to true: a templated string must not switch on remote code execution.
    "trust_remote_code": "provider rule (security): a strict boolean",
}


# Values of the other fields the provider refuses although the class takes them, each with its reason.
def trailing_newline(value: Any) -> bool:
    # The class's patterns end in "$", which Python's re lets match before one final "\n" ("a0\n" passes it): a
    # name or project that ends in a newline (a templating slip) would make an entity no path can name cleanly.
    # The provider matches the whole value (fullmatch), so it refuses that one character more.
    return isinstance(value, str) and value.endswith("\n")


def unclean_reference(value: Any) -> bool:
    # The create route strips a fileset reference before it looks the fileset up (parse_entity_ref), so
    # " ws/ckpt" finds ws/ckpt; the provider takes a reference only in its clean form (a templating slip is refused,
    # nothing sent), and refuses a part ending in a newline for the reason above.
    return isinstance(value, str) and (value != value.strip() or any(map(trailing_newline, value.split("/"))))


STRICTER_VALUES = {
    "name": trailing_newline,
    "project": trailing_newline,
    "workspace": trailing_newline,
    "fileset": unclean_reference,
}


def deliberately_stricter(body: dict[str, Any]) -> set[str]:
    return set(STRICTER) | {field for field, rule in STRICTER_VALUES.items() if rule(body.get(field))}


@pytest.fixture(scope="module")
def oracle() -> Any:
    if not SERVER_PYTHON.exists():
        reason = f"NVIDIA's NeMo Platform server environment is missing at {SERVER_PYTHON}: run `./dev setup`"
        if os.environ.get("MODELREG_REQUIRE_NEMO") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    process = subprocess.Popen(
        [str(SERVER_PYTHON), str(ORACLE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NMP_CONFIG_WARNINGS_DISABLED": "1", "NEMO_TELEMETRY_ENABLED": "false"},
    )

    def verdict(body: Any, check: str = "create") -> set[str]:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"check": check, "value": body}) + "\n")
        process.stdin.flush()
        return set(json.loads(process.stdout.readline())["refused"])

    try:
        yield verdict
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=30)


def provider_refuses(body: dict[str, Any], model: type[RequestModel] = CreateModelEntity) -> set[str]:
    """The top-level fields the provider's request model refuses under today's name rule (validate_names, which
    the operators and the sensor run, raises InvalidRequest naming them; ``names()`` is read only then)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        with pytest.raises(InvalidRequest):
            validate_names(model, body, lambda: {})
        return {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    assert validate_names(model, body, lambda: {}) is not None
    return set()


NAME_CHARS = "abcxyzAZ0189-_.@+/ \n💡"
names = st.one_of(
    st.text(alphabet=NAME_CHARS, min_size=0, max_size=70),
    st.from_regex(r"[a-z][a-z0-9\-@.+_]{0,63}\n?", fullmatch=True),
)
projects = st.one_of(
    st.text(alphabet="abAZ09_-./ \n#é", min_size=0, max_size=20), st.text("ab/", min_size=250, max_size=260)
)
bodies = st.fixed_dictionaries(
    {"name": names},
    optional={
        "project": projects,
        "description": st.one_of(st.text(max_size=5), st.text("d", min_size=995, max_size=1005)),
        "finetuning_type": st.one_of(st.sampled_from([f.value for f in FinetuningType]), st.text(max_size=8)),
        "backend_format": st.one_of(st.sampled_from([f.value for f in BackendFormat]), st.text(max_size=8)),
        "fileset": st.from_regex(r"[a-z]{2,5}(/[a-z]{2,5})?", fullmatch=True),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_the_provider_refuses_exactly_what_nvidias_request_class_refuses(oracle, body):
    stricter = deliberately_stricter(body)
    theirs = oracle(body) - stricter
    ours = provider_refuses(body) - stricter
    assert ours == theirs, f"{body!r}: NVIDIA refuses {sorted(theirs)}, the provider {sorted(ours)}"


# -- path parameters and references: only names a workspace, model or fileset can have ----------------------------
# NVIDIA's routes take any string as {workspace} and {name} (nemo-platform 0.6.0 models API) and answer 404 for
# one no entity has; what can exist is what the classes that make workspaces, models and filesets take.
path_names = st.one_of(names, st.sampled_from([".", "..", "a%2Fb", "ab?x=1", "ab#c", "default", "a" * 63, "a" * 64]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(workspace=path_names, name=path_names)
def test_path_parameters_are_refused_exactly_when_no_workspace_or_model_can_have_them(oracle, workspace, name):
    ref = {"workspace": workspace, "name": name}
    stricter = deliberately_stricter(ref) & set(ref)
    theirs = (oracle(workspace, "workspace_name") | oracle(name, "model_name")) - stricter
    ours = provider_refuses(ref, ModelEntityRef) - stricter
    assert ours == theirs, f"{ref!r}: NVIDIA refuses {sorted(theirs)}, the provider {sorted(ours)}"
    if not ours and not stricter:
        # The hook's own fence (looser: a pre-0.4.0 platform's names too) lets every such path through, each
        # parameter one quoted segment.
        assert models_path(workspace, name).count("/") == models_path(workspace).count("/") + 1


fileset_references = st.one_of(
    path_names,
    st.builds(lambda ws, fs: f"{ws}/{fs}", path_names, path_names),
    st.builds(
        lambda pad, ref, end: pad + ref + end,
        st.sampled_from(["", " ", "\t"]),
        st.from_regex(r"[a-z][a-z0-9\-.]{1,8}(/[a-z][a-z0-9\-_]{1,8})?", fullmatch=True),
        st.sampled_from(["", " ", "\n", "/", "//x"]),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reference=fileset_references)
def test_a_fileset_reference_is_refused_exactly_when_the_create_route_could_find_no_fileset_by_it(oracle, reference):
    body = {"name": "model-a", "fileset": reference}
    stricter = deliberately_stricter(body) - set(STRICTER) | ({"fileset"} if unclean_reference(reference) else set())
    theirs = oracle(reference, "fileset_reference") - stricter
    ours = provider_refuses(body) - stricter
    assert ours == theirs, f"{reference!r}: NVIDIA finds no fileset by it: {bool(theirs)}, the provider refuses {ours}"
