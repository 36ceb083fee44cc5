"""MLflow tracking and registry in two flavours, one set of handlers on shared state.

* **OCI AI Data Platform** MLOps (preview version 20260430): tracking (experiments, runs) is
  workspace-scoped, the registry (registered models, model versions) platform-scoped, with an extra
  workspace-scoped ``model-versions/create``. Every request must carry a valid OCI signature; creates honour
  ``opc-retry-token``; answers carry ``opc-request-id`` and ``etag``. Errors are OCI-shaped
  ``{code, message}``: the platform's own codes are not documented, so the sandbox uses OCI's conventional
  ones, which the hook must understand besides MLflow's: 400 ``InvalidParameter``, 404
  ``NotAuthorizedOrNotFound``, 409 ``Conflict`` for a duplicate name. A model version stays
  PENDING_REGISTRATION for ``state.seconds("mlflow")`` seconds, then becomes READY, or FAILED_REGISTRATION
  with a ``status_message`` when an outcome rule for "mlflow" matches its name.
* **Open-source MLflow** at ``/api/2.0/mlflow/``, no auth, errors ``{error_code, message}`` (400
  ``INVALID_PARAMETER_VALUE``, 404 ``RESOURCE_DOES_NOT_EXIST``, 400 ``RESOURCE_ALREADY_EXISTS``), model
  versions READY at once as with the real server's SQL store, and an unknown status in ``runs/update``
  ignored with 200 as the real server does. tests/sandbox/test_mlflow_differential.py runs one MlflowClient
  session against a real ``mlflow server`` and this flavour and compares the answers call by call.

Both flavours serve what MlflowClient calls in an ordinary tracking and registry session, with MLflow's
filter grammar for ``runs/search`` and the searches of the registry, and MLflow's key and name rules.
Oracle's ``MLOpsClient`` 5.1.1 has no alias or get-latest-versions operations: the AI Data Platform flavour
serves them at MLflow's suffixes and methods (unconfirmed for the real platform).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import posixpath
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from airflow_provider_modelreg.sandbox.oci_common import check_signature, oci_error, oci_json, with_retry_token
from airflow_provider_modelreg.sandbox.state import SandboxState, phase, public, request_id

SERVICE = "mlflow"
EXPERIMENTS = "mlflow.experiments"
RUNS = "mlflow.runs"
REGISTERED_MODELS = "mlflow.registered_models"
MODEL_VERSIONS = "mlflow.model_versions"

PLATFORM = "/20260430/aiDataPlatforms/{platform_id}/mlops/api/2.0/mlflow"
WORKSPACE = "/20260430/aiDataPlatforms/{platform_id}/workspaces/{workspace_key}/mlops/api/2.0/mlflow"
OPEN_SOURCE = "/api/2.0/mlflow"

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED", "INTERNAL_ERROR")
# MLflow's rule for metric, param and tag keys (mlflow/utils/validation.py, POSIX hosts): these characters
# only, at most 250 of them, and the key must not resolve to another path (no "..", no leading "/").
KEY_CHARACTERS = re.compile(r"^[/\w.\- :]*$")
NAME_RULE = KEY_CHARACTERS  # kept for callers of the earlier name
ALIAS_RULE = re.compile(r"^[\w\-]*$")
MAX_KEY, MAX_EXPERIMENT_NAME, MAX_ALIAS = 250, 500, 255
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ITEMS, MAX_PARAM_VALUE, MAX_TAG_VALUE = 1000, 100, 100, 1000, 6000, 8000
DEFAULT_PAGE = 1000
# What GET /version answers: the open-source flavour imitates this release (the differential's newest server).
MLFLOW_VERSION = "3.17.2"

# Names of runs created without one, in MLflow's form "<adjective>-<noun>-<0..1000>", at most 20 characters
# (MLflow's server names them so; these short word lists are the sandbox's own).
RUN_NAME_ADJECTIVES = (
    "amber", "brave", "calm", "clever", "dapper", "eager", "fancy", "gentle", "happy", "jolly",
    "kind", "lucky", "merry", "nimble", "polite", "quick", "rustic", "sunny", "tidy", "witty",
)  # fmt: skip
RUN_NAME_NOUNS = (
    "badger", "bison", "crane", "deer", "eel", "finch", "gnu", "heron", "ibis", "koala",
    "lark", "mole", "newt", "otter", "panda", "quail", "robin", "seal", "trout", "wren",
)  # fmt: skip


def generated_run_name(run_id: str) -> str:
    """A run's name in MLflow's form, drawn from its id (the same run always gets the same name)."""
    digest = hashlib.sha256(run_id.encode()).digest()
    adjective = RUN_NAME_ADJECTIVES[digest[0] % len(RUN_NAME_ADJECTIVES)]
    noun = RUN_NAME_NOUNS[digest[1] % len(RUN_NAME_NOUNS)]
    return f"{adjective}-{noun}-{int.from_bytes(digest[2:4], 'big') % 1001}"


class ApiError(Exception):
    """A request the service refuses; ``kind`` is "invalid", "missing" or "exists"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Invalid(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid", message)


class Missing(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__("missing", message)


@dataclass(frozen=True)
class Flavour:
    name: str
    tracking: str  # route prefix of experiments and runs
    registry: str  # route prefix of registered models and model versions
    signed: bool
    codes: dict[str, tuple[int, str]]
    strict_run_status: bool  # refuse an unknown status in runs/update (the real MLflow server ignores it)
    model_name_rule: bool  # MLflow 3's rule: no '/' or ':' in registered model names
    # MLflow servers (2.22.5 and 3.17.2 alike) cut a param value to 6000 characters; the seed refuses.
    truncate_params: bool

    def error(self, exc: ApiError, request: Request) -> JSONResponse:
        status, code = self.codes[exc.kind]
        if self.signed:
            return oci_error(status, code, str(exc), request)
        return JSONResponse({"error_code": code, "message": str(exc)}, status_code=status)

    def answer(self, data: Any, request: Request) -> JSONResponse:
        if self.signed:
            return oci_json(data, request, headers={"etag": _etag(data)})
        return JSONResponse(data, headers={"x-request-id": request.headers.get("x-request-id") or request_id()})


AIDP = Flavour(
    "aidp",
    WORKSPACE,
    PLATFORM,
    signed=True,
    codes={
        "invalid": (400, "InvalidParameter"),
        "missing": (404, "NotAuthorizedOrNotFound"),
        "exists": (409, "Conflict"),
    },
    strict_run_status=True,
    model_name_rule=False,
    truncate_params=False,
)
MLFLOW = Flavour(
    "mlflow",
    OPEN_SOURCE,
    OPEN_SOURCE,
    signed=False,
    codes={
        "invalid": (400, "INVALID_PARAMETER_VALUE"),
        "missing": (404, "RESOURCE_DOES_NOT_EXIST"),
        "exists": (400, "RESOURCE_ALREADY_EXISTS"),
    },
    strict_run_status=False,
    model_name_rule=True,
    truncate_params=True,
)
FLAVOURS = (AIDP, MLFLOW)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _etag(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _next_id(state: SandboxState) -> str:
    with state.lock:
        counter = state.extra.setdefault("mlflow_ids", itertools.count(1))
        return str(next(counter))


# -- validation (MLflow's rules, written from mlflow/utils/validation.py's behaviour) ----------------------
def _string(body: dict[str, Any], name: str, *, required: bool = False, low: int = 0, high: int | None = None) -> Any:
    value = body.get(name)
    if value is None or (required and value == ""):
        if required:
            raise Invalid(f"Missing value for required parameter '{name}'")
        return None
    if not isinstance(value, str):
        raise Invalid(f"'{name}' must be a string")
    if len(value) < low or (high is not None and len(value) > high):
        raise Invalid(f"'{name}' must be {low}..{high} characters long")
    return value


def check_key(key: Any, what: str = "key") -> str:
    """A metric, param or tag key by MLflow's rule, or Invalid naming the key and the rule."""
    if not isinstance(key, str) or key == "":
        raise Invalid(f"Missing value for required parameter '{what}'")
    if not KEY_CHARACTERS.match(key):
        raise Invalid(
            f"Invalid value {key!r} for parameter '{what}' supplied: Names may only contain alphanumerics, "
            "underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/)."
        )
    normal = posixpath.normpath(key)
    if normal != key or normal == "." or normal.startswith(("..", "/")):
        raise Invalid(
            f"Invalid value {key!r} for parameter '{what}' supplied: Names may be treated as files in certain "
            f"cases, and must not resolve to other names when treated as such. This name would resolve to "
            f"{normal!r}"
        )
    if len(key) > MAX_KEY:
        raise Invalid(f"'{what}' exceeds the maximum length of {MAX_KEY} characters")
    return key


def _tags(body: dict[str, Any], *, most: int | None = None, value_limit: int = MAX_TAG_VALUE) -> list[dict[str, str]]:
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise Invalid("'tags' must be an array of {key, value}")
    if most is not None and len(tags) > most:
        raise Invalid(f"at most {most} tags are allowed")
    for tag in tags:
        check_key(tag.get("key"), "key")
        if not isinstance(tag.get("value", ""), str) or len(tag.get("value", "")) > value_limit:
            raise Invalid(f"tag {tag['key']!r}: the value must be a string of at most {value_limit} characters")
    return [{"key": t["key"], "value": t.get("value", "")} for t in tags]


def _check_model_name(flavour: Flavour, name: str) -> None:
    if not flavour.model_name_rule:
        return
    if name.strip() == "":
        raise Invalid("Missing value for required parameter 'name'")
    if "/" in name or ":" in name:
        raise Invalid(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")


def _check_alias(alias: Any, *, reserved: bool) -> str:
    if not isinstance(alias, str) or alias == "":
        raise Invalid("Registered model alias name cannot be empty.")
    if not ALIAS_RULE.match(alias) or len(alias) > MAX_ALIAS:
        raise Invalid(
            f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores (_) and dashes "
            f"(-), at most {MAX_ALIAS} characters."
        )
    if reserved and (alias.lower() == "latest" or re.fullmatch(r"[vV]\d+", alias)):
        raise Invalid(f"Alias name '{alias}' is reserved.")
    return alias


# -- MLflow's filter grammar: "<entity>.<key> <op> <value>" clauses joined by AND ---------------------------
_IDENT = r"(?:(?P<prefix>[A-Za-z_]+)\.)?(?P<key>`[^`]+`|\"[^\"]+\"|[\w.:\-/]+)"
_CLAUSE = re.compile(
    rf"^\s*{_IDENT}\s*(?P<op>!=|<=|>=|=|<|>|\bNOT\s+IN\b|\bIN\b|\bI?LIKE\b)\s*(?P<value>.+?)\s*$", re.IGNORECASE
)
_ORDER = re.compile(rf"^\s*{_IDENT}(?:\s+(?P<dir>ASC|DESC))?\s*$", re.IGNORECASE)
_ENTITY = {
    "metric": "metrics",
    "metrics": "metrics",
    "param": "params",
    "params": "params",
    "parameter": "params",
    "parameters": "params",
    "tag": "tags",
    "tags": "tags",
    "attribute": "attributes",
    "attributes": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
_STRING_OPS = {"=", "!=", "LIKE", "ILIKE", "IN", "NOT IN"}
_NUMBER_OPS = {"=", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Clause:
    entity: str  # metrics, params, tags, attributes
    key: str
    op: str
    value: Any


def _split_and(text: str) -> list[str]:
    """The clauses of a filter: split on AND outside quotes."""
    parts, current, quote, i = [], [], "", 0
    while i < len(text):
        char = text[i]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        else:
            m = re.match(r"\s+and\s+", text[i:], re.IGNORECASE)
            if m:
                parts.append("".join(current))
                current, i = [], i + m.end()
                continue
        current.append(char)
        i += 1
    if quote:
        raise Invalid(f"Invalid filter string {text!r}: unterminated quote")
    parts.append("".join(current))
    return parts


def _literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return float(text)
    except ValueError:
        raise Invalid(f"Invalid value {text!r} in filter string: expected a quoted string or a number") from None


def _identifier(m: re.Match[str], attributes: dict[str, str], entities: set[str], what: str) -> tuple[str, str]:
    prefix = (m["prefix"] or "").lower()
    key = m["key"].strip('`"')
    entity = _ENTITY.get(prefix, "") if prefix else "attributes"
    if not entity or entity not in entities or (entity == "attributes" and key not in attributes):
        raise Invalid(f"Invalid {what} key '{m.group(0).strip()}': not one of {sorted(entities)} or a known attribute")
    return entity, key


def parse_filter(text: str | None, attributes: dict[str, str], entities: set[str]) -> list[Clause]:
    """Clauses of ``text``; ``attributes`` maps attribute name to "string" or "number"."""
    if not text or not text.strip():
        return []
    clauses = []
    for part in _split_and(text.strip()):
        m = _CLAUSE.match(part)
        if not m:
            raise Invalid(f"Invalid clause(s) in filter string: {part.strip()!r}")
        entity, key = _identifier(m, attributes, entities, "search")
        op = re.sub(r"\s+", " ", m["op"].upper())
        raw = m["value"]
        numeric = entity == "metrics" or (entity == "attributes" and attributes[key] == "number")
        if op in ("IN", "NOT IN"):
            if numeric or not (raw.startswith("(") and raw.endswith(")")):
                raise Invalid(f"Invalid clause {part.strip()!r}: IN takes a parenthesised list of strings")
            value: Any = [_literal(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
        else:
            value = _literal(raw)
        if numeric and (op not in _NUMBER_OPS or not isinstance(value, float)):
            raise Invalid(f"Invalid clause {part.strip()!r}: {key} compares numbers with {sorted(_NUMBER_OPS)}")
        if not numeric and (op not in _STRING_OPS or isinstance(value, float)):
            raise Invalid(f"Invalid clause {part.strip()!r}: {key} compares quoted strings with {sorted(_STRING_OPS)}")
        clauses.append(Clause(entity, key, op, value))
    return clauses


def _like(pattern: str, value: str, *, fold: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL if fold else re.DOTALL) is not None


PROMPT_TAG = "mlflow.prompt.is_prompt"


def _holds(clause: Clause, actual: Any) -> bool:
    if actual is None and clause.entity == "tags" and clause.key == PROMPT_TAG:
        actual = "false"  # MLflow 3's client filters prompts out with this tag; a model without it is no prompt
    if actual is None:
        return False  # a run without the metric, param or tag never matches (the SQL store joins)
    op, want = clause.op, clause.value
    if op == "LIKE":
        return _like(want, str(actual), fold=False)
    if op == "ILIKE":
        return _like(want, str(actual), fold=True)
    if op == "IN":
        return actual in want
    if op == "NOT IN":
        return actual not in want
    if isinstance(want, float):
        actual = float(actual)
    return {
        "=": actual == want,
        "!=": actual != want,
        "<": actual < want,
        "<=": actual <= want,
        ">": actual > want,
        ">=": actual >= want,
    }[op]


def parse_order(items: Any, attributes: dict[str, str], entities: set[str]) -> list[tuple[str, str, bool]]:
    if items in (None, ""):
        return []
    if not isinstance(items, list):
        items = [items]
    order = []
    for item in items:
        m = _ORDER.match(str(item))
        if not m:
            raise Invalid(f"Invalid order_by clause {item!r}")
        entity, key = _identifier(m, attributes, entities, "order_by")
        order.append((entity, key, (m["dir"] or "ASC").upper() == "ASC"))
    return order


def _sorted(records: list[Any], order: list[tuple[str, str, bool]], value: Callable[[Any, str, str], Any]) -> list[Any]:
    """Sorted by each (entity, key, ascending) in turn; a record without the value comes last either way."""

    def compare(a: Any, b: Any) -> int:
        for entity, key, ascending in order:
            x, y = value(a, entity, key), value(b, entity, key)
            if x == y:
                continue
            if x is None or y is None:
                return 1 if x is None else -1
            result = -1 if x < y else 1
            return result if ascending else -result
        return 0

    return sorted(records, key=functools.cmp_to_key(compare))


def _page(items: list[Any], max_results: Any, page_token: Any) -> tuple[list[Any], str | None]:
    try:
        size = int(max_results) if max_results not in (None, "") else DEFAULT_PAGE
        start = int(page_token) if page_token not in (None, "") else 0
    except ValueError:
        raise Invalid("max_results and page_token must be integers") from None
    if size < 1 or size > 50000:
        raise Invalid("max_results must be between 1 and 50000")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def _paged(key: str, items: list[Any], args: dict[str, Any]) -> dict[str, Any]:
    page, token = _page(items, args.get("max_results"), args.get("page_token"))
    return {key: page} | ({"next_page_token": token} if token else {})


# -- views ------------------------------------------------------------------------------------------
def _latest_metrics(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for metric in record["_metrics"]:
        current = latest.get(metric["key"])
        mine = (metric["step"], metric["timestamp"], metric["value"])
        if current is None or mine >= (current["step"], current["timestamp"], current["value"]):
            latest[metric["key"]] = metric
    return latest


def _run_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "info": public(record),
        "data": {
            "metrics": list(_latest_metrics(record).values()),
            "params": [{"key": k, "value": v} for k, v in record["_params"].items()],
            "tags": [{"key": k, "value": v} for k, v in record["_tags"].items()],
        },
        "inputs": {},
        "outputs": {},
    }


RUN_ATTRIBUTES = {
    "run_id": "string",
    "run_name": "string",
    "status": "string",
    "user_id": "string",
    "artifact_uri": "string",
    "lifecycle_stage": "string",
    "start_time": "number",
    "end_time": "number",
    "created": "number",
}


def _run_value(record: dict[str, Any], entity: str, key: str) -> Any:
    if entity == "metrics":
        metric = _latest_metrics(record).get(key)
        return None if metric is None else metric["value"]
    if entity == "params":
        return record["_params"].get(key)
    if entity == "tags":
        return record["_tags"].get(key)
    return record.get("start_time" if key == "created" else key)


def _version_view(state: SandboxState, record: dict[str, Any], *, aliases: bool = True) -> dict[str, Any]:
    if record["_flavour"] == MLFLOW.name:
        status = "READY"  # the real server's SQL store registers at once
    else:
        failure = record.get("_failure")
        final = "FAILED_REGISTRATION" if failure else "READY"
        status = phase(record, state.seconds(SERVICE), [("PENDING_REGISTRATION", 1.0)], final)
    shown = public(record) | {"status": status}
    shown["aliases"] = (
        sorted(a for a, v in record["_model"]["_aliases"].items() if v == record["version"]) if aliases else []
    )
    if status == "FAILED_REGISTRATION":
        shown["status_message"] = record["_failure"]
    elif status == "PENDING_REGISTRATION":
        shown["status_message"] = "Registration in progress"
    return shown


def _model_view(state: SandboxState, model: dict[str, Any]) -> dict[str, Any]:
    versions = [v for v in state.all(MODEL_VERSIONS) if v["_model"] is model]
    latest: dict[str, dict[str, Any]] = {}
    for version in versions:
        stage = version["current_stage"]
        if stage not in latest or int(version["version"]) > int(latest[stage]["version"]):
            latest[stage] = version
    shown = public(model) | {
        # the real server lists the latest versions without their aliases
        "latest_versions": [_version_view(state, v, aliases=False) for v in latest.values()],
        "aliases": [{"alias": a, "version": v} for a, v in sorted(model["_aliases"].items())],
    }
    return shown


VERSION_ATTRIBUTES = {"name": "string", "run_id": "string", "source_path": "string", "version_number": "number"}
VERSION_ORDER_DEFAULT = [("attributes", "last_updated_timestamp", False), ("attributes", "name", True)]


def _version_value(record: dict[str, Any], entity: str, key: str) -> Any:
    if entity == "tags":
        return {t["key"]: t["value"] for t in record["tags"]}.get(key)
    if key == "version_number":
        return int(record["version"])
    return record.get("source" if key == "source_path" else key)


# -- the handlers, shared by both flavours ----------------------------------------------------------------
@dataclass
class Call:
    flavour: Flavour
    state: SandboxState
    request: Request
    args: dict[str, Any]

    @property
    def tracking_scope(self) -> tuple[str, str, str]:
        params = self.request.path_params
        return (self.flavour.name, params.get("platform_id", ""), params.get("workspace_key", ""))

    @property
    def registry_scope(self) -> tuple[str, str]:
        return (self.flavour.name, self.request.path_params.get("platform_id", ""))

    def principal(self) -> str:
        user = self.request.headers.get("dh-user-principal") or self.args.get("user_id") or ""
        return user if isinstance(user, str) else ""

    # lookups
    def experiment(self, *, name: str | None = None, eid: Any = None) -> dict[str, Any] | None:
        for record in self.state.all(EXPERIMENTS):
            if record["_scope"] != self.tracking_scope:
                continue
            if (name is not None and record["name"] == name) or (eid is not None and record["experiment_id"] == eid):
                return record
        return None

    def run(self, run_id: Any, *, active: bool = False) -> dict[str, Any]:
        record = self.state.get(RUNS, run_id) if isinstance(run_id, str) else None
        if record is None or record["_scope"] != self.tracking_scope:
            raise Missing(f"Run with id={run_id} not found")
        if active and record["lifecycle_stage"] != "active":
            raise Invalid(f"The run {run_id} must be in the 'active' state. Current state is deleted.")
        return record

    def model(self, name: Any) -> dict[str, Any]:
        record = self.state.get(REGISTERED_MODELS, f"{self.registry_scope}/{name}")
        if record is None:
            raise Missing(f"Registered Model with name={name} not found")
        return record

    def version(self, name: Any, version: Any) -> dict[str, Any]:
        self.model(name)
        record = self.state.get(MODEL_VERSIONS, f"{self.registry_scope}/{name}/{version}")
        if record is None:
            raise Missing(f"Model Version (name={name}, version={version}) not found")
        return record


Handler = Callable[[Call], Any]


def create_experiment(call: Call) -> dict[str, Any]:
    name = _string(call.args, "name", required=True, low=1, high=MAX_EXPERIMENT_NAME)
    tags = _tags(call.args)
    with call.state.lock:
        if call.experiment(name=name):
            raise ApiError("exists", f"Experiment(name={name}) already exists.")
        experiment_id = _next_id(call.state)
        now = _now_ms()
        scheme = "oci://mlflow" if call.flavour.signed else "mlflow-artifacts:"
        call.state.store(
            EXPERIMENTS,
            f"{call.tracking_scope}/{experiment_id}",
            {
                "experiment_id": experiment_id,
                "name": name,
                "artifact_location": call.args.get("artifact_location") or f"{scheme}/{experiment_id}",
                "lifecycle_stage": "active",
                "creation_time": now,
                "last_update_time": now,
                "tags": tags,
                "_scope": call.tracking_scope,
            },
        )
    return {"experiment_id": experiment_id}


def get_experiment(call: Call) -> dict[str, Any]:
    record = call.experiment(eid=call.args.get("experiment_id"))
    if record is None:
        raise Missing(f"No Experiment with id={call.args.get('experiment_id')} exists")
    return {"experiment": public(record)}


def get_experiment_by_name(call: Call) -> dict[str, Any]:
    name = call.args.get("experiment_name", "")
    record = call.experiment(name=name)
    if record is None:
        raise Missing(f"Experiment with name '{name}' not found")
    return {"experiment": public(record)}


def search_experiments(call: Call) -> dict[str, Any]:
    experiments = [public(r) for r in call.state.all(EXPERIMENTS) if r["_scope"] == call.tracking_scope]
    return _paged("experiments", experiments, call.args)


def create_run(call: Call) -> dict[str, Any]:
    experiment_id = _string(call.args, "experiment_id", required=True, low=1)
    run_name = _string(call.args, "run_name", high=250)
    tags = _tags(call.args)
    start_time = call.args.get("start_time")
    if start_time is not None and (not isinstance(start_time, int) or start_time < 0):
        raise Invalid("'start_time' must be a non-negative integer (milliseconds)")
    if call.experiment(eid=experiment_id) is None:
        raise Missing(f"No Experiment with id={experiment_id} exists")
    run_id = call.state.new_hex_id(32)
    tag_map = {t["key"]: t["value"] for t in tags}
    name = run_name or tag_map.get("mlflow.runName") or generated_run_name(run_id)
    tag_map["mlflow.runName"] = name
    scheme = "oci://mlflow" if call.flavour.signed else "mlflow-artifacts:"
    record = call.state.store(
        RUNS,
        run_id,
        {
            "run_id": run_id,
            "run_uuid": run_id,
            "run_name": name,
            "experiment_id": experiment_id,
            "user_id": call.principal(),
            "status": "RUNNING",
            "start_time": start_time if start_time is not None else 0,
            "artifact_uri": f"{scheme}/{experiment_id}/{run_id}/artifacts",
            "lifecycle_stage": "active",
            "_scope": call.tracking_scope,
            "_params": {},
            "_metrics": [],
            "_tags": tag_map,
        },
    )
    return {"run": _run_view(record)}


def get_run(call: Call) -> dict[str, Any]:
    return {"run": _run_view(call.run(call.args.get("run_id") or call.args.get("run_uuid")))}


def update_run(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id") or call.args.get("run_uuid"))
    status = call.args.get("status")
    if status is not None and status not in RUN_STATUSES:
        if call.flavour.strict_run_status:
            raise Invalid(f"'status' must be one of {', '.join(RUN_STATUSES)}")
        status = None  # the real MLflow server ignores a status it does not know
    end_time = call.args.get("end_time")
    if end_time is not None and (not isinstance(end_time, int) or end_time < 0):
        raise Invalid("'end_time' must be a non-negative integer (milliseconds)")
    with call.state.lock:
        if status is not None:
            record["status"] = status
        if end_time is not None:
            record["end_time"] = end_time
        if isinstance(call.args.get("run_name"), str) and call.args["run_name"]:
            record["run_name"] = record["_tags"]["mlflow.runName"] = call.args["run_name"]
    return {"run_info": public(record)}


def delete_run(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id"))
    with call.state.lock:
        record["lifecycle_stage"] = "deleted"
    return {}


def _log(
    call: Call,
    record: dict[str, Any],
    metrics: list[Any],
    params: list[Any],
    tags: list[dict[str, str]],
) -> None:
    """Check then store a batch: nothing is stored when any item is refused."""
    for metric in metrics:
        if not isinstance(metric, dict):
            raise Invalid("each metric must be an object {key, value, timestamp, step}")
        check_key(metric.get("key"), "name")
        value = metric.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"metric {metric['key']!r}: 'value' must be a number")
        for name in ("timestamp", "step"):
            if not isinstance(metric.get(name, 0), int) or isinstance(metric.get(name, 0), bool):
                raise Invalid(f"metric {metric['key']!r}: '{name}' must be an integer")
    logged: dict[str, str] = {}
    for param in params:
        if not isinstance(param, dict):
            raise Invalid("each param must be an object {key, value}")
        key = check_key(param.get("key"), "key")
        value = param.get("value")
        if isinstance(value, str) and call.flavour.truncate_params:
            value = value[:MAX_PARAM_VALUE]
        if not isinstance(value, str) or len(value) > MAX_PARAM_VALUE:
            raise Invalid(f"param {key!r}: the value must be a string of at most {MAX_PARAM_VALUE} characters")
        old = record["_params"].get(key, logged.get(key))
        if old is not None and old != value:
            raise Invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{old}' for run ID='{record['run_id']}'. Attempted logging new value '{value}'."
            )
        logged[key] = value
    with call.state.lock:
        seen = {(m["key"], m["value"], m["timestamp"], m["step"]) for m in record["_metrics"]}
        for metric in metrics:
            point = {
                "key": metric["key"],
                "value": float(metric["value"]),
                "timestamp": metric.get("timestamp", 0),
                "step": metric.get("step", 0),
            }
            if (point["key"], point["value"], point["timestamp"], point["step"]) not in seen:
                record["_metrics"].append(point)
        record["_params"].update(logged)
        record["_tags"].update({t["key"]: t["value"] for t in tags})


def log_batch(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id"), active=True)
    metrics, params = call.args.get("metrics") or [], call.args.get("params") or []
    tags = _tags(call.args)
    if not isinstance(metrics, list) or not isinstance(params, list):
        raise Invalid("'metrics' and 'params' must be arrays")
    if len(metrics) > MAX_METRICS or len(params) > MAX_PARAMS or len(tags) > MAX_TAGS:
        raise Invalid(
            f"A batch logging request can contain at most {MAX_METRICS} metrics, {MAX_PARAMS} params "
            f"and {MAX_TAGS} tags; got {len(metrics)}, {len(params)} and {len(tags)}"
        )
    if len(metrics) + len(params) + len(tags) > MAX_ITEMS:
        raise Invalid(f"A batch logging request can contain at most {MAX_ITEMS} items")
    _log(call, record, metrics, params, tags)
    call.state.bump("mlflow.log_batch_calls")
    return {}


def log_metric(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id") or call.args.get("run_uuid"), active=True)
    metric = {k: call.args.get(k) for k in ("key", "value", "timestamp", "step") if k in call.args}
    _log(call, record, [metric], [], [])
    return {}


def log_param(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id") or call.args.get("run_uuid"), active=True)
    _log(call, record, [], [{"key": call.args.get("key"), "value": call.args.get("value")}], [])
    return {}


def set_tag(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id") or call.args.get("run_uuid"), active=True)
    _log(call, record, [], [], _tags({"tags": [{"key": call.args.get("key"), "value": call.args.get("value", "")}]}))
    return {}


def metric_history(call: Call) -> dict[str, Any]:
    record = call.run(call.args.get("run_id") or call.args.get("run_uuid"))
    key = call.args.get("metric_key")
    points = [m for m in record["_metrics"] if m["key"] == key]
    return _paged("metrics", points, call.args)


def search_runs(call: Call) -> dict[str, Any]:
    ids = call.args.get("experiment_ids") or []
    if not isinstance(ids, list) or not ids:
        raise Invalid("'experiment_ids' must be a non-empty array")
    entities = {"metrics", "params", "tags", "attributes"}
    clauses = parse_filter(call.args.get("filter"), RUN_ATTRIBUTES, entities)
    order = parse_order(call.args.get("order_by"), RUN_ATTRIBUTES, entities)
    stages = {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}, "ALL": {"active", "deleted"}}
    view_type = call.args.get("run_view_type") or "ACTIVE_ONLY"
    if view_type not in stages:
        raise Invalid(f"'run_view_type' must be one of {', '.join(stages)}")
    runs = [
        r
        for r in call.state.all(RUNS)
        if r["_scope"] == call.tracking_scope
        and r["experiment_id"] in ids
        and r["lifecycle_stage"] in stages[view_type]
        and all(_holds(c, _run_value(r, c.entity, c.key)) for c in clauses)
    ]
    # after the asked order, the real server's own: newest start first, then run id
    runs = _sorted(runs, [*order, ("attributes", "start_time", False), ("attributes", "run_id", True)], _run_value)
    page = _paged("runs", runs, call.args)
    return page | {"runs": [_run_view(r) for r in page["runs"]]}


def create_registered_model(call: Call) -> dict[str, Any]:
    name = _string(call.args, "name", required=True, low=1, high=255)
    _check_model_name(call.flavour, name)
    description = _string(call.args, "description", high=5000)
    tags = _tags(call.args, most=20 if call.flavour.signed else None)
    key = f"{call.registry_scope}/{name}"
    with call.state.lock:
        if call.state.get(REGISTERED_MODELS, key) is not None:
            raise ApiError("exists", f"Registered Model (name={name}) already exists.")
        now = _now_ms()
        record = call.state.store(
            REGISTERED_MODELS,
            key,
            {
                "name": name,
                "creation_timestamp": now,
                "last_updated_timestamp": now,
                "description": description or "",
                "tags": tags,
                # Oracle's MLOpsClient models no user_id on a registered model (open-source MLflow does):
                # tests/sandbox/test_aidp_conformance.py checks every answer against its models.
                **({} if call.flavour.signed else {"user_id": call.principal()}),
                "_scope": call.registry_scope,
                "_aliases": {},
            },
        )
    return {"registered_model": _model_view(call.state, record)}


def get_registered_model(call: Call) -> dict[str, Any]:
    return {"registered_model": _model_view(call.state, call.model(call.args.get("name", "")))}


MODEL_ATTRIBUTES = {"name": "string"}


def search_registered_models(call: Call) -> dict[str, Any]:
    entities = {"attributes", "tags"}
    clauses = parse_filter(call.args.get("filter"), MODEL_ATTRIBUTES, entities)
    attributes = MODEL_ATTRIBUTES | {"last_updated_timestamp": "number", "timestamp": "number"}
    order = parse_order(call.args.get("order_by"), attributes, {"attributes"})

    def value(record: dict[str, Any], entity: str, key: str) -> Any:
        if entity == "tags":
            return {t["key"]: t["value"] for t in record["tags"]}.get(key)
        return record.get("last_updated_timestamp" if key == "timestamp" else key)

    models = [
        r
        for r in call.state.all(REGISTERED_MODELS)
        if r["_scope"] == call.registry_scope and all(_holds(c, value(r, c.entity, c.key)) for c in clauses)
    ]
    models = _sorted(models, [*order, ("attributes", "name", True)], value)
    page = _paged("registered_models", models, call.args)
    return page | {"registered_models": [_model_view(call.state, r) for r in page["registered_models"]]}


def get_latest_versions(call: Call) -> dict[str, Any]:
    model = call.model(call.args.get("name", ""))
    stages = call.args.get("stages") or []
    shown = _model_view(call.state, model)["latest_versions"]
    return {"model_versions": [v for v in shown if not stages or v["current_stage"] in stages]}


def create_model_version(call: Call) -> dict[str, Any]:
    name = _string(call.args, "name", required=True, low=1, high=255)
    source = _string(call.args, "source", required=True, low=1, high=500)
    run_id = _string(call.args, "run_id", low=1, high=32)
    model_id = _string(call.args, "model_id", high=36)
    run_link = _string(call.args, "run_link", high=500)
    description = _string(call.args, "description", high=5000)
    tags = _tags(call.args, most=20 if call.flavour.signed else None)
    model = call.model(name)
    with call.state.lock:
        versions = [r for r in call.state.all(MODEL_VERSIONS) if r["_model"] is model]
        version = str(len(versions) + 1)
        now = _now_ms()
        model["last_updated_timestamp"] = now
        record = call.state.store(
            MODEL_VERSIONS,
            f"{call.registry_scope}/{name}/{version}",
            {
                "name": name,
                "version": version,
                "creation_timestamp": now,
                "last_updated_timestamp": now,
                "current_stage": "None",
                "description": description or "",
                "source": source,
                "run_id": run_id or "",
                "run_link": run_link or "",
                "model_id": model_id or "",
                "tags": tags,
                "user_id": call.principal(),
                "_flavour": call.flavour.name,
                "_model": model,
                "_failure": call.state.failure_for(SERVICE, name) if call.flavour.signed else None,
            },
        )
    return {"model_version": _version_view(call.state, record)}


def get_model_version(call: Call) -> dict[str, Any]:
    return {"model_version": _version_view(call.state, call.version(call.args.get("name"), call.args.get("version")))}


def search_model_versions(call: Call) -> dict[str, Any]:
    entities = {"attributes", "tags"}
    clauses = parse_filter(call.args.get("filter"), VERSION_ATTRIBUTES, entities)
    attributes = VERSION_ATTRIBUTES | {"last_updated_timestamp": "number", "creation_timestamp": "number"}
    order = parse_order(call.args.get("order_by"), attributes, {"attributes"})
    versions = [
        r
        for r in call.state.all(MODEL_VERSIONS)
        if r["_model"]["_scope"] == call.registry_scope
        and all(_holds(c, _version_value(r, c.entity, c.key)) for c in clauses)
    ]
    # the real server's default order: last updated first, then name, then the newest version
    versions = _sorted(
        versions, [*order, *VERSION_ORDER_DEFAULT, ("attributes", "version_number", False)], _version_value
    )
    page = _paged("model_versions", versions, call.args)
    return page | {"model_versions": [_version_view(call.state, r) for r in page["model_versions"]]}


def set_model_version_tag(call: Call) -> dict[str, Any]:
    record = call.version(call.args.get("name"), call.args.get("version"))
    tag = _tags({"tags": [{"key": call.args.get("key"), "value": call.args.get("value", "")}]})[0]
    with call.state.lock:
        record["tags"] = [t for t in record["tags"] if t["key"] != tag["key"]] + [tag]
    return {}


def set_alias(call: Call) -> dict[str, Any]:
    alias = _check_alias(call.args.get("alias"), reserved=True)
    record = call.version(call.args.get("name"), call.args.get("version"))
    with call.state.lock:
        record["_model"]["_aliases"][alias] = record["version"]
    return {}


def get_by_alias(call: Call) -> dict[str, Any]:
    alias = _check_alias(call.args.get("alias"), reserved=False)
    model = call.model(call.args.get("name"))
    version = model["_aliases"].get(alias)
    if version is None:
        # the real server answers 400 INVALID_PARAMETER_VALUE here, not 404
        raise Invalid(f"Registered model alias {alias} not found.")
    return get_model_version(Call(call.flavour, call.state, call.request, {"name": model["name"], "version": version}))


def delete_alias(call: Call) -> dict[str, Any]:
    alias = _check_alias(call.args.get("alias"), reserved=False)
    model = call.model(call.args.get("name"))
    with call.state.lock:
        model["_aliases"].pop(alias, None)
    return {}


# (methods, scope, suffix, handler, is a create that honours opc-retry-token)
ROUTES: list[tuple[tuple[str, ...], str, str, Handler, bool]] = [
    (("POST",), "tracking", "experiments/create", create_experiment, True),
    (("GET",), "tracking", "experiments/get", get_experiment, False),
    (("GET",), "tracking", "experiments/get-by-name", get_experiment_by_name, False),
    (("GET", "POST"), "tracking", "experiments/search", search_experiments, False),
    (("POST",), "tracking", "runs/create", create_run, True),
    (("GET",), "tracking", "runs/get", get_run, False),
    (("POST",), "tracking", "runs/update", update_run, False),
    (("POST",), "tracking", "runs/delete", delete_run, False),
    (("POST",), "tracking", "runs/log-batch", log_batch, False),
    (("POST",), "tracking", "runs/log-metric", log_metric, False),
    (("POST",), "tracking", "runs/log-parameter", log_param, False),
    (("POST",), "tracking", "runs/set-tag", set_tag, False),
    (("POST",), "tracking", "runs/search", search_runs, False),
    (("GET",), "tracking", "metrics/get-history", metric_history, False),
    (("POST",), "registry", "registered-models/create", create_registered_model, True),
    (("GET",), "registry", "registered-models/get", get_registered_model, False),
    (("GET",), "registry", "registered-models/search", search_registered_models, False),
    (("GET", "POST"), "registry", "registered-models/get-latest-versions", get_latest_versions, False),
    (("POST",), "registry", "registered-models/alias", set_alias, False),
    (("GET",), "registry", "registered-models/alias", get_by_alias, False),
    (("DELETE",), "registry", "registered-models/alias", delete_alias, False),
    (("POST",), "registry", "model-versions/create", create_model_version, True),
    (("POST",), "tracking", "model-versions/create", create_model_version, True),  # AIDP's workspace scope
    (("GET",), "registry", "model-versions/get", get_model_version, False),
    (("GET",), "registry", "model-versions/search", search_model_versions, False),
    (("POST",), "registry", "model-versions/set-tag", set_model_version_tag, False),
]


def _endpoint(flavour: Flavour, state: SandboxState, handler: Handler, create: bool) -> Callable[..., Awaitable[Any]]:
    async def endpoint(request: Request) -> Any:
        if flavour.signed:
            raw, denied = await check_signature(request, state)
            if denied is not None:
                return denied
        else:
            raw = await request.body()
        if request.method == "GET" or not raw:
            args: dict[str, Any] = dict(request.query_params)
            if "stages" in request.query_params:
                args["stages"] = request.query_params.getlist("stages")
        else:
            try:
                args = json.loads(raw)
            except ValueError:
                return flavour.error(Invalid("The request body is not valid JSON"), request)
            if not isinstance(args, dict):
                return flavour.error(Invalid("The request body must be a JSON object"), request)

        async def run() -> JSONResponse:
            try:
                return flavour.answer(handler(Call(flavour, state, request, args)), request)
            except ApiError as exc:
                return flavour.error(exc, request)

        if create and flavour.signed:
            return await with_retry_token(request, state, SERVICE, raw, run)
        return await run()

    return endpoint


def server_version() -> PlainTextResponse:
    """``GET /version`` as an MLflow server answers it: the version as plain text."""
    return PlainTextResponse(MLFLOW_VERSION)


def router(state: SandboxState) -> APIRouter:
    api = APIRouter()
    api.add_api_route("/version", server_version, methods=["GET"], name="mlflow:GET version")
    for flavour in FLAVOURS:
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for methods, scope, suffix, handler, create in ROUTES:
            path = f"{flavour.tracking if scope == 'tracking' else flavour.registry}/{suffix}"
            if (path, methods) in seen:
                continue  # open-source MLflow has one prefix for tracking and registry
            seen.add((path, methods))
            api.add_api_route(
                path,
                _endpoint(flavour, state, handler, create),
                methods=list(methods),
                name=f"{flavour.name}:{' '.join(methods)} {suffix}",
                include_in_schema=True,
            )
    return api
