"""The provider's MLflow validation judged by MLflow's own: generated inputs go to the provider's request
models and, in batches, to MLflow's validation functions (``mlflow.utils.validation``, as the server applies
them) in MLflow 3.17.2's and 2.22.5's own environments (fixtures/mlflow_oracle.py). The provider refuses an
input exactly when MLflow refuses it or would silently truncate it, except for the deliberate differences
in ``DELIBERATE``, each with the source of its rule; the test asserts those and nothing else.

The AI Data Platform runs MLflow of a version it does not publish: its fields are judged by MLflow 3.17.2,
except registered model names, which its seed page documents as 1..255 characters with no character rule
(judged by MLflow 2.22.5's function, which refuses only an empty name, plus the 255).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.hooks.mlflow import name_filter, validate_alias
from airflow_provider_modelreg.models.base import InvalidRequest, validate_request
from airflow_provider_modelreg.models.mlflow import (
    AIDP_RULES,
    MLFLOW_NAME_COLUMN,
    CreateExperimentRequest,
    CreateModelVersionRequest,
    CreateRegisteredModelRequest,
    LogBatchRequest,
    MlflowServerRules,
    server_context,
)

# Deterministic and modest: each example is one batch of BATCH inputs (one round trip to the oracle).
VENDOR_SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BATCH = 80


@dataclass(frozen=True)
class Server:
    """A server the provider may talk to: its rules, and the MLflow version whose functions judge a field."""

    name: str
    rules: MlflowServerRules
    judge: str  # the oracle's MLflow version
    name_judge: str  # the one judging registered model names


SERVERS = {
    "mlflow-3": Server("MLflow 3.17.2", MlflowServerRules.of_mlflow("3.17.2"), "3.17.2", "3.17.2"),
    "mlflow-2": Server("MLflow 2.22.5", MlflowServerRules.of_mlflow("2.22.5"), "2.22.5", "2.22.5"),
    "aidp": Server("OCI AI Data Platform", AIDP_RULES, "3.17.2", "2.22.5"),
}
SEED = "seeds/oci-aidp-mlflow-create-model-version.txt and API-NOTES section 2 (AI Data Platform seed limits)"
TRUNCATES = (
    "mlflow.utils.validation keeps the first {n} characters without an error (MLFLOW_TRUNCATE_LONG_VALUES, "
    "on by default; real 2.22.5 and 3.17.2 servers store the cut value): refused so nothing is lost silently"
)


@dataclass(frozen=True)
class Deliberate:
    """Where the provider refuses what MLflow's functions take, on purpose."""

    field: str
    servers: tuple[str, ...]
    rule: str
    source: str
    applies: Callable[[list[Any], str], bool]  # (the check's args, MLflow's verdict) -> the rule refuses them


DELIBERATE = (
    Deliberate(
        "param",
        tuple(SERVERS),
        "a value over 6000 characters",
        TRUNCATES.format(n=6000),
        lambda args, verdict: verdict == "truncated",
    ),
    Deliberate(
        "tag",
        tuple(SERVERS),
        "a value over 8000 characters",
        TRUNCATES.format(n=8000),
        lambda args, verdict: verdict == "truncated",
    ),
    Deliberate(
        "registered_model_name",
        ("mlflow-3", "mlflow-2"),
        f"over {MLFLOW_NAME_COLUMN} characters",
        "MLflow's registry schema: the name is a String(256) column (mlflow.store.model_registry.dbmodels), "
        "enforced by MySQL and PostgreSQL stores, not by SQLite or the validation functions",
        lambda args, verdict: len(args[0]) > MLFLOW_NAME_COLUMN,
    ),
    Deliberate(
        "registered_model_name", ("aidp",), "over 255 characters", SEED, lambda args, verdict: len(args[0]) > 255
    ),
    Deliberate(
        "model_version_tag",
        ("aidp",),
        "a value over 8000 characters (MLflow 3.17.2 takes 100,000)",
        SEED,
        lambda args, verdict: len(args[1]) > 8000,
    ),
)


# -- the provider's verdict: None (accepted) or its error --------------------------------------------------
def provider_error(check: str, args: list[Any], server: Server) -> str | None:
    context = server_context(server.rules)
    try:
        if check == "metric_key":
            validate_request(
                LogBatchRequest, {"run_id": "r", "metrics": [{"key": args[0], "value": 1.0, "timestamp": 0}]}
            )
        elif check == "param":
            validate_request(LogBatchRequest, {"run_id": "r", "params": [{"key": args[0], "value": args[1]}]})
        elif check == "tag":
            validate_request(LogBatchRequest, {"run_id": "r", "tags": [{"key": args[0], "value": args[1]}]})
        elif check == "model_version_tag":
            body = {"name": "m", "source": "s3://b/m", "tags": [{"key": args[0], "value": args[1]}]}
            validate_request(CreateModelVersionRequest, body, context=context)
        elif check == "registered_model_name":
            validate_request(CreateRegisteredModelRequest, {"name": args[0]}, context=context)
            validate_request(CreateModelVersionRequest, {"name": args[0], "source": "s3://b/m"}, context=context)
        elif check == "alias_to_set":
            validate_alias(args[0], to_set=True)
        elif check == "experiment_name":
            validate_request(CreateExperimentRequest, {"name": args[0]})
        else:
            raise AssertionError(check)
    except InvalidRequest as exc:
        return str(exc)
    return None


# Where the error must point: the field, as the provider names it.
FIELD_NAMED = {
    "metric_key": "metrics.0.key",
    "param": "params.0.",
    "tag": "tags.0.",
    "model_version_tag": "tags",
    "registered_model_name": "name",
    "alias_to_set": "alias",
    "experiment_name": "name",
}


def compare(check: str, cases: list[list[Any]], server_key: str, oracles: Any) -> None:
    """Every case: the provider refuses exactly when MLflow refuses or truncates, or a DELIBERATE rule applies."""
    server = SERVERS[server_key]
    judge = server.name_judge if check == "registered_model_name" else server.judge
    verdicts = oracles.get(judge).judge([(check, args) for args in cases])
    wrong = []
    for args, (verdict, message) in zip(cases, verdicts, strict=True):
        deliberate = [
            d for d in DELIBERATE if d.field == check and server_key in d.servers and d.applies(args, verdict)
        ]
        expected_refusal = verdict != "ok" or bool(deliberate)
        error = provider_error(check, args, server)
        if (error is not None) != expected_refusal:
            wrong.append(
                f"{check}{tuple(a[:60] + '…' if len(a) > 60 else a for a in args)!r}: MLflow {judge} says "
                f"{verdict} ({message}); the provider {'refuses: ' + error if error else 'accepts'}"
            )
            continue
        if error is not None:
            assert FIELD_NAMED[check] in error and "nothing was sent" in error, error
            if verdict == "truncated":
                assert "MLflow would silently truncate" in error, error
    assert not wrong, f"{len(wrong)} of {len(cases)} differ on {server.name}:\n" + "\n".join(wrong[:10])


# -- inputs: MLflow's characters and their neighbours, near every length limit --------------------------------
# Letters MLflow's \w takes or not (a non-ASCII digit, a superscript, a no-break space, a long s), an emoji.
TRICKY = [
    *string.ascii_letters[:6],
    *string.digits[:3],
    *"_-. /:\n\t#%'\"\\`,",
    "é",
    "中",
    "٣",
    "²",
    "💡",
    "\u00a0",
    "\u017f",
]
short = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters(codec="utf-8")), max_size=12)
shaped = st.builds(
    lambda head, body, tail: head + body + tail,
    st.sampled_from(["", "/", "./", "../", "a/", " ", "v", "V", "latest", "LATEST"]),
    short,
    st.sampled_from(["", "\n", "/", "/.", "/..", "//x", " ", "\n\n", "1", "2"]),
)


def near(limit: int) -> st.SearchStrategy[str]:
    """Strings of about ``limit`` characters, sometimes ending in a character MLflow's rules care about."""
    return st.builds(
        lambda n, fill, tail: fill * (n - len(tail)) + tail,
        st.integers(min_value=limit - 2, max_value=limit + 2),
        st.sampled_from(["k", "é", "-"]),
        st.sampled_from(["", "\n", "#"]),
    )


names = st.one_of(short, shaped, near(250), near(255), near(256))
long_values = st.one_of(short, near(5000), near(6000), near(8000), near(100_000))
SERVER_KEYS = list(SERVERS)


@pytest.mark.parametrize("server_key", SERVER_KEYS)
@pytest.mark.parametrize("check", ["metric_key", "alias_to_set", "experiment_name", "registered_model_name"])
def test_names_are_refused_exactly_when_mlflow_refuses_them(mlflow_oracles, server_key, check):
    inputs = st.one_of(names, near(500)) if check == "experiment_name" else names

    @VENDOR_SETTINGS
    @given(batch=st.lists(inputs, min_size=BATCH, max_size=BATCH))
    def judged(batch: list[str]) -> None:
        compare(check, [[name] for name in batch], server_key, mlflow_oracles)

    judged()


@pytest.mark.parametrize("server_key", SERVER_KEYS)
@pytest.mark.parametrize("check", ["param", "tag", "model_version_tag"])
def test_keys_and_values_are_refused_exactly_when_mlflow_refuses_or_truncates_them(mlflow_oracles, server_key, check):
    pair = st.one_of(st.tuples(names, short), st.tuples(st.sampled_from(["k", "a/b", "k\n"]), long_values))

    @VENDOR_SETTINGS
    @given(batch=st.lists(pair, min_size=BATCH // 2, max_size=BATCH // 2))
    def judged(batch: list[tuple[str, str]]) -> None:
        compare(check, [list(p) for p in batch], server_key, mlflow_oracles)

    judged()


# The inputs issue 29 names, each judged the same way (and so each in the suite for good).
ISSUE_CASES = [
    ("metric_key", ["loss\n"]),
    ("param", ["lr\n", "0.1"]),
    ("tag", ["team\n", "ml"]),
    ("alias_to_set", ["champion\n"]),
    ("alias_to_set", ["a" * 255 + "\n"]),
    ("model_version_tag", ["#", "v"]),
    ("model_version_tag", ["a/b", "v"]),
    ("model_version_tag", ["..", "v"]),
    ("model_version_tag", ["💡", "v"]),
    ("registered_model_name", ["a\"b'c"]),
    ("registered_model_name", ["a/b"]),
    ("registered_model_name", ["x" * 256]),
    ("registered_model_name", ["x" * 257]),
    ("param", ["p", "v" * 6001]),
    ("tag", ["t", "v" * 8001]),
    ("model_version_tag", ["t", "v" * 5001]),
    ("model_version_tag", ["t", "v" * 8001]),
    ("model_version_tag", ["t", "v" * 100_001]),
]


@pytest.mark.parametrize("server_key", SERVER_KEYS)
def test_the_inputs_the_issue_names_are_judged_like_mlflow(mlflow_oracles, server_key):
    for check, args in ISSUE_CASES:
        compare(check, [args], server_key, mlflow_oracles)


def test_the_deliberate_differences_each_happen_and_name_their_source(mlflow_oracles):
    """Each DELIBERATE rule decides at least one of the issue's inputs (none is dead), and says where it is from."""
    used = set()
    for server_key, server in SERVERS.items():
        for check, args in ISSUE_CASES:
            judge = server.name_judge if check == "registered_model_name" else server.judge
            verdict = mlflow_oracles.get(judge).judge([(check, args)])[0][0]
            used |= {
                i
                for i, d in enumerate(DELIBERATE)
                if d.field == check and server_key in d.servers and verdict != "invalid" and d.applies(args, verdict)
            }
    assert used == set(range(len(DELIBERATE)))
    assert all(d.source and d.rule for d in DELIBERATE)


@pytest.mark.parametrize("version", ["3.17.2", "2.22.5"])
def test_the_seed_limits_on_model_versions_are_mlflows_column_widths(mlflow_oracles, version):
    """Limits the provider applies to every server: the seed page's, which equal MLflow's registry columns
    (MySQL and PostgreSQL stores enforce them; MLflow's validation functions do not check them)."""
    widths = mlflow_oracles.get(version).judge([("column_widths", [])])[0][1]
    for field in ("source", "run_id", "run_link", "description"):
        width = widths[f"model_version.{field}"]
        body = {"name": "m", "source": "s3://b/m"}
        validate_request(CreateModelVersionRequest, body | {field: "x" * width})
        with pytest.raises(InvalidRequest, match=rf"{field}: .*at most {width}"):
            validate_request(CreateModelVersionRequest, body | {field: "x" * (width + 1)})
    assert widths["model_version.name"] == MLFLOW_NAME_COLUMN
    assert widths["model_version_tag.key"] == 250


# -- names in search filters: every name MLflow takes can be found, before anything is made -----------------
QUOTES = ["'", '"', "\\", "%", "_", "`", " ", "a", "A", "\n", "é"]
quoted = st.text(alphabet=st.sampled_from(QUOTES), min_size=1, max_size=8)


def look_alikes(name: str) -> list[str]:
    """The name and models a LIKE written for it may also select (a quote or backslash read as any one
    character, another case)."""
    return list(dict.fromkeys([name, name.replace("'", "_"), name.replace("\\", "_"), name.swapcase(), name + "x"]))


@pytest.mark.parametrize("version", ["3.17.2", "2.22.5"])
def test_every_name_mlflow_takes_is_selected_by_the_providers_name_filter(mlflow_oracles, version):
    """Issue 29: a name holding both quote characters passed validation, its model was made, then the operator
    raised writing the filter to find it. Now every name MLflow takes has a filter (``name_filter``: a quoted
    literal, or LIKE when the name holds both quotes) that MLflow's own registry search parses and that selects
    the name; keeping the exact name (as every caller does) leaves that one model."""
    oracle = mlflow_oracles.get(version)

    @VENDOR_SETTINGS
    @given(batch=st.lists(st.one_of(quoted, names), min_size=BATCH // 2, max_size=BATCH // 2))
    def judged(batch: list[str]) -> None:
        taken = [
            name
            for name, (verdict, _) in zip(
                batch, oracle.judge([("registered_model_name", [n]) for n in batch]), strict=True
            )
            if verdict == "ok"
        ]
        searches = oracle.judge([("model_version_search", [name_filter(n), look_alikes(n)]) for n in taken])
        for name, (verdict, answer) in zip(taken, searches, strict=True):
            assert verdict == "ok", f"MLflow {version} cannot parse {name_filter(name)!r} for {name!r}: {answer}"
            assert [n for n in answer["selected"] if n == name] == [name], (name, name_filter(name), answer)

    judged()
