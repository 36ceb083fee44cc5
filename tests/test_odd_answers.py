"""Server answers that are not what the docs say: non-JSON bodies, HTML error pages from a proxy, empty bodies,
JSON of the wrong shape, missing fields, unknown enum values. Through every hook call, every sensor's poke and
the trigger, the outcome is a clear ServiceError (saying what came back) or a logged unknown state, never a bare
KeyError, AttributeError or TypeError.

A tiny ASGI app on loopback answers every request with the answer under test.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from fixtures.oci_vision import vision_arguments

from airflow_provider_modelreg.http import RetryPolicy, ServiceClient, ServiceError
from airflow_provider_modelreg.lifecycle import LifecycleTrigger

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02, total_budget=5)


# -- the odd server ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    name: str
    status: int
    content_type: str
    body: bytes
    # What a clear error says about it (None: a JSON body that may be accepted or refused).
    says: str | None


PROXY_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    b"<hr><center>nginx/1.25.3</center></body></html>"
)
LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>Sign in to continue</form></body></html>"
)

ANSWERS = [
    Answer("text-200", 200, "text/plain", b"OK", "expected JSON"),
    Answer("html-200", 200, "text/html", b"<html><body><h1>Welcome to nginx!</h1></body></html>", "HTML"),
    Answer("truncated-json-200", 200, "application/json", b'{"id": "abc", "sta', "expected JSON"),
    Answer("empty-200", 200, "application/json", b"", None),
    Answer("json-object-200", 200, "application/json", b"{}", None),
    Answer("json-list-200", 200, "application/json", b"[]", None),
    Answer("json-string-200", 200, "application/json", b'"ok"', None),
    Answer("json-null-200", 200, "application/json", b"null", None),
    Answer("html-502-proxy", 502, "text/html", PROXY_502, "502 Bad Gateway"),
    Answer(
        "text-503-envoy", 503, "text/plain", b"upstream connect error or disconnect/reset before headers", "upstream"
    ),
    Answer("html-401-login", 401, "text/html", LOGIN_PAGE, "Sign in"),
    Answer("json-400-unknown-shape", 400, "application/json", b'{"oops": {"reason": 1}}', "oops"),
]


class OddServer:
    """Answers every request with ``self.answer`` (or, when set, with ``self.route(method, path)``)."""

    def __init__(self) -> None:
        self.answer: Answer = ANSWERS[0]
        self.route: Callable[[str, str], Answer | None] | None = None
        self.requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.requests += 1
        answer = (self.route(scope["method"], scope["path"]) if self.route else None) or self.answer
        headers = [(b"content-type", answer.content_type.encode()), (b"content-length", str(len(answer.body)).encode())]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


@pytest.fixture(scope="module")
def odd_server() -> Iterator[Any]:
    from airflow_provider_modelreg.sandbox.server import SandboxServer

    app = OddServer()
    with SandboxServer(SimpleNamespace(app=app)) as server:  # type: ignore[arg-type]
        server.odd = app
        yield server


@pytest.fixture
def odd(odd_server: Any, monkeypatch: pytest.MonkeyPatch, oci_conn_fields: dict[str, Any]) -> OddServer:
    """Connections of every type pointing at the odd server; fast client retries everywhere (hooks, triggers)."""
    url = odd_server.url
    conns = {
        "odd_hr": {"conn_type": "happyrobot", "host": f"{url}/api/v1", "password": "key"},
        "odd_oci": {"conn_type": "oci", "host": url, "extra": oci_conn_fields},
        "odd_aidp": {
            "conn_type": "oci_aidp",
            "host": url,
            "extra": oci_conn_fields | {"ai_data_platform_id": "ocid1.aidataplatform.oc1..p", "workspace_key": "ws"},
        },
        "odd_mlflow": {"conn_type": "mlflow", "host": url},
        "odd_nemo": {"conn_type": "nemo_platform", "host": url},
    }
    for conn_id, conn in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    original = ServiceClient.__init__

    def fast(self: ServiceClient, **kwargs: Any) -> None:
        original(self, **(kwargs | {"retry": FAST}))

    monkeypatch.setattr(ServiceClient, "__init__", fast)
    odd_server.odd.route = None
    return odd_server.odd


# -- every hook call --------------------------------------------------------------------------------------------
def _happyrobot_request() -> Any:
    from airflow_provider_modelreg.models.happyrobot import CreateModelRequest

    return CreateModelRequest(
        use_case_id="uc", name="n", from_model_id="d" * 24, train_sample_ids=["s"], test_sample_ids=[]
    )


def _hr() -> Any:
    from airflow_provider_modelreg.hooks.happyrobot import HappyRobotHook

    return HappyRobotHook(conn_id="odd_hr")


def _oci() -> Any:
    from airflow_provider_modelreg.hooks.oci_vision import OCIVisionHook

    return OCIVisionHook(conn_id="odd_oci")


def _mlflow(conn_id: str = "odd_mlflow") -> Any:
    from airflow_provider_modelreg.hooks.mlflow import mlflow_hook

    return mlflow_hook(conn_id)


def _nemo() -> Any:
    from airflow_provider_modelreg.hooks.nemo import NemoModelsHook

    return NemoModelsHook(conn_id="odd_nemo")


def _vision_details() -> Any:
    from airflow_provider_modelreg.models.oci_vision import CreateModelDetails

    return CreateModelDetails.model_validate(vision_arguments())


def _run_request() -> Any:
    from airflow_provider_modelreg.models.mlflow import CreateRunRequest

    return CreateRunRequest(experiment_id="1", run_name="r")


def _log_request() -> Any:
    from airflow_provider_modelreg.models.mlflow import LogBatchRequest

    return LogBatchRequest(run_id="r", metrics=[{"key": "m", "value": 1.0}])


def _version_request() -> Any:
    from airflow_provider_modelreg.models.mlflow import CreateModelVersionRequest

    return CreateModelVersionRequest(name="m", source="runs:/r/model", run_id="r")


def _registered_request() -> Any:
    from airflow_provider_modelreg.models.mlflow import CreateRegisteredModelRequest

    return CreateRegisteredModelRequest(name="m")


def _entity() -> Any:
    from airflow_provider_modelreg.models.nemo import CreateModelEntity

    return CreateModelEntity(name="bot")


HOOK_CALLS: dict[str, Callable[[], Any]] = {
    "happyrobot.create_model": lambda: _hr().create_model(_happyrobot_request()),
    "happyrobot.get_model": lambda: _hr().get_model("m"),
    "happyrobot.list_models": lambda: _hr().list_models(use_case_id="uc"),
    "happyrobot.find_models": lambda: _hr().find_models(_happyrobot_request()),
    "oci_vision.create_model": lambda: _oci().create_model(_vision_details(), retry_token="t"),
    "oci_vision.get_model": lambda: _oci().get_model("ocid1.aivisionmodel.oc1..m"),
    "oci_vision.list_models": lambda: _oci().list_models(compartment_id="ocid1.compartment.oc1..c"),
    "oci_vision.get_work_request": lambda: _oci().get_work_request("ocid1.wr.oc1..w"),
    "oci_vision.list_work_request_errors": lambda: _oci().list_work_request_errors("ocid1.wr.oc1..w"),
    "mlflow.get_experiment_by_name": lambda: _mlflow().get_experiment_by_name("e"),
    "mlflow.create_experiment": lambda: _mlflow().create_experiment("e"),
    "mlflow.get_or_create_experiment": lambda: _mlflow().get_or_create_experiment("e"),
    "mlflow.create_run": lambda: _mlflow().create_run(_run_request()),
    "mlflow.get_run": lambda: _mlflow().get_run("r"),
    "mlflow.set_run_status": lambda: _mlflow().set_run_status("r", "FINISHED"),
    "mlflow.log_batch": lambda: _mlflow().log_batch(_log_request()),
    "mlflow.search_runs": lambda: _mlflow().search_runs(["1"]),
    "mlflow.find_run_by_tag": lambda: _mlflow().find_run_by_tag("1", "k", "v"),
    "mlflow.ensure_registered_model": lambda: _mlflow().ensure_registered_model(_registered_request()),
    "mlflow.create_model_version": lambda: _mlflow().create_model_version(_version_request()),
    "mlflow.get_model_version": lambda: _mlflow().get_model_version("m", 1),
    "mlflow.find_model_version_by_tag": lambda: _mlflow().find_model_version_by_tag("m", "k", "v"),
    "oci_aidp.create_model_version": lambda: _mlflow("odd_aidp").create_model_version(_version_request(), "t"),
    "oci_aidp.get_run": lambda: _mlflow("odd_aidp").get_run("r"),
    "nemo.create_model": lambda: _nemo().create_model("default", _entity()),
    "nemo.get_model": lambda: _nemo().get_model("default", "bot"),
    "nemo.find_model": lambda: _nemo().find_model("default", "bot"),
    "nemo.list_models": lambda: _nemo().list_models("default"),
    "nemo.delete_model": lambda: _nemo().delete_model("default", "bot"),
}


def hook_cases() -> list[Any]:
    return [
        pytest.param(
            call,
            answer,
            id=f"{call}-{answer.name}",
        )
        for call in sorted(HOOK_CALLS)
        for answer in ANSWERS
    ]


def outcome_of(call: Callable[[], Any]) -> tuple[str, Any]:
    """("returned", value) or ("ServiceError", error); any other exception fails the test with its type."""
    try:
        return "returned", call()
    except ServiceError as exc:
        return "ServiceError", exc
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} instead of a ServiceError: {exc!r}")


@pytest.mark.parametrize(("call", "answer"), hook_cases())
def test_hook_calls_answer_a_clear_service_error_or_a_value(odd, call, answer):
    odd.answer = answer
    kind, value = outcome_of(HOOK_CALLS[call])
    if answer.status >= 400 or answer.says == "expected JSON" or answer.says == "HTML":
        assert kind == "ServiceError", f"an answer like {answer.name} must not pass as a result: {value!r}"
    if kind == "ServiceError":
        message = str(value)
        assert message.startswith(value.service) and " failed: " in message
        if answer.says:
            assert answer.says in message, message
        if answer.status >= 400:
            assert value.status == answer.status
        elif answer.says in ("expected JSON", "HTML"):
            assert value.code == "InvalidResponse"


# -- sensors: poke -------------------------------------------------------------------------------------------------
def _sensor(kind: str) -> Any:
    common = {"task_id": "wait", "poke_interval": 0.1}
    if kind == "happyrobot":
        from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

        return HappyRobotModelSensor(conn_id="odd_hr", model_id="m" * 24, **common)
    if kind == "oci_vision":
        from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

        return OCIVisionModelSensor(conn_id="odd_oci", model_id="ocid1.aivisionmodel.oc1..m", **common)
    if kind == "mlflow_model_version":
        from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor

        return MlflowModelVersionSensor(conn_id="odd_mlflow", name="m", version=1, **common)
    if kind == "mlflow_run":
        from airflow_provider_modelreg.sensors.mlflow import MlflowRunSensor

        return MlflowRunSensor(conn_id="odd_aidp", run_id="r", **common)
    from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor

    return NemoModelSpecSensor(conn_id="odd_nemo", name="bot", workspace="default", **common)


SENSORS = ["happyrobot", "oci_vision", "mlflow_model_version", "mlflow_run", "nemo"]
# A resource in a state the documentation does not list (and, for NeMo, an entity without the expected fields).
UNKNOWN_STATES = {
    "happyrobot": ({"id": "m", "status": "queued"}, "queued"),
    "oci_vision": ({"id": "m", "lifecycleState": "NEEDS_ATTENTION"}, "NEEDS_ATTENTION"),
    "mlflow_model_version": ({"model_version": {"name": "m", "version": "1", "status": "ARCHIVING"}}, "ARCHIVING"),
    "mlflow_run": ({"run": {"info": {"run_id": "r", "status": "PAUSED"}}}, "PAUSED"),
    "nemo": ("just a string", "AWAITING_SPEC"),
}


def task_log(capfd: pytest.CaptureFixture[str]) -> str:
    """What the task logged (operators and sensors log through structlog to the captured output)."""
    out, err = capfd.readouterr()
    return out + err


def context() -> dict[str, Any]:
    return {"ti": SimpleNamespace(dag_id="d", task_id="wait", run_id="r", map_index=-1, try_number=1)}


@pytest.mark.parametrize("answer", ANSWERS, ids=[a.name for a in ANSWERS])
@pytest.mark.parametrize("sensor", SENSORS)
def test_sensor_pokes_fail_clearly_or_keep_waiting(odd, sensor, answer, capfd):
    odd.answer = answer
    kind, value = outcome_of(lambda: _sensor(sensor).poke(context()))
    if answer.status in (429, 500, 502, 503, 504):
        # Transient past the per-request retries: the sensor pokes again until its timeout (issue 19.2),
        # and its log names the error.
        assert kind == "returned" and value.is_done is False
        assert "could not be read" in task_log(capfd)
        return
    if answer.status >= 400 or answer.says in ("expected JSON", "HTML"):
        assert kind == "ServiceError" and answer.says in str(value)
    if kind == "returned":  # JSON of the wrong shape: not done, and the unknown state is in the log
        assert value.is_done is False
        if sensor != "nemo":  # an entity's state is derived (spec filled or not): there is nothing unknown
            assert "which is not a known state" in task_log(capfd)


@pytest.mark.parametrize("sensor", SENSORS)
def test_an_unknown_state_is_logged_once_and_waited_on(odd, sensor, capfd):
    resource, state = UNKNOWN_STATES[sensor]
    odd.answer = Answer("unknown", 200, "application/json", json.dumps(resource).encode(), None)
    task = _sensor(sensor)
    results = [task.poke(context()) for _ in range(3)]
    assert [r.is_done for r in results] == [False] * 3
    if sensor != "nemo":
        warnings = [line for line in task_log(capfd).splitlines() if "not a known state" in line]
        assert len(warnings) == 1 and f"is in state {state!r}" in warnings[0]


# -- the trigger -------------------------------------------------------------------------------------------------
SPECS = {
    "happyrobot": ("airflow_provider_modelreg.hooks.happyrobot:MODEL_LIFECYCLE", "odd_hr", {"model_id": "m" * 24}),
    "oci_vision": (
        "airflow_provider_modelreg.hooks.oci_vision:MODEL_LIFECYCLE",
        "odd_oci",
        {"model_id": "ocid1.aivisionmodel.oc1..m"},
    ),
    "mlflow_model_version": (
        "airflow_provider_modelreg.hooks.mlflow:MODEL_VERSION_LIFECYCLE",
        "odd_mlflow",
        {"api": "/api/2.0/mlflow", "name": "m", "version": "1"},
    ),
    "mlflow_run": (
        "airflow_provider_modelreg.hooks.mlflow:RUN_LIFECYCLE",
        "odd_mlflow",
        {"api": "/api/2.0/mlflow", "run_id": "r"},
    ),
    "nemo": (
        "airflow_provider_modelreg.hooks.nemo:MODEL_SPEC_LIFECYCLE",
        "odd_nemo",
        {"workspace": "default", "name": "bot"},
    ),
}


async def first_event(trigger: LifecycleTrigger) -> dict[str, Any]:
    try:
        async for event in trigger.run():
            return dict(event.payload)
    finally:
        await trigger.cleanup()
    raise AssertionError("the trigger ended without an event")


def run_trigger(service: str, seconds: float = 0.5) -> dict[str, Any]:
    spec, conn_id, ref = SPECS[service]
    trigger = LifecycleTrigger(spec=spec, conn_id=conn_id, ref=ref, poll_interval=0.1, end_time=time.time() + seconds)
    return asyncio.run(first_event(trigger))


@pytest.mark.parametrize("answer", ANSWERS, ids=[a.name for a in ANSWERS])
@pytest.mark.parametrize("service", sorted(SPECS))
def test_the_trigger_ends_with_an_error_event_or_a_timeout_never_a_crash(odd, service, answer):
    odd.answer = answer
    event = run_trigger(service)
    assert event["status"] in ("error", "timeout"), event
    assert event["message"]
    if event["status"] == "error":
        assert answer.says is None or answer.says in event["message"]
    if answer.status >= 400 or answer.says in ("expected JSON", "HTML"):
        assert event["status"] == "error"


@pytest.mark.parametrize("service", sorted(SPECS))
def test_the_trigger_times_out_naming_an_unknown_state(odd, service):
    resource, state = UNKNOWN_STATES[service]
    odd.answer = Answer("unknown", 200, "application/json", json.dumps(resource).encode(), None)
    event = run_trigger(service)
    assert event["status"] == "timeout"
    assert re.search(rf"was still {re.escape(state)} when the wait timed out", event["message"]), event


# -- operators: a create answered 200 with a JSON object that lacks the resource's id ----------------------------
def _operator(kind: str) -> Any:
    common = {"task_id": "create", "wait_for_completion": True, "poll_interval": 0.1, "wait_timeout": 0.5}
    if kind == "happyrobot":
        from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

        return HappyRobotCreateModelOperator(
            conn_id="odd_hr", use_case_id="uc", name="n", from_model_id="d" * 24, train_sample_ids=["s"],
            test_sample_ids=[], **common,
        )  # fmt: skip
    if kind == "oci_vision":
        from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

        return OCIVisionCreateModelOperator(conn_id="odd_oci", **(vision_arguments() | common))
    if kind == "mlflow_run":
        from airflow_provider_modelreg.operators.mlflow import MlflowCreateRunOperator

        return MlflowCreateRunOperator(conn_id="odd_aidp", experiment_name="e", **common)
    if kind == "mlflow_model_version":
        from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator

        return MlflowCreateModelVersionOperator(conn_id="odd_aidp", name="m", source="runs:/r/model", **common)
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

    return NemoCreateModelOperator(conn_id="odd_nemo", name="bot", workspace="default", fileset="default/c", **common)


@pytest.mark.parametrize(
    "operator",
    [
        "happyrobot",
        "oci_vision",
        "mlflow_run",
        "mlflow_model_version",
        "nemo",  # {} reads as an existing entity that differs: a clear AirflowFailException
    ],
)
def test_an_operator_whose_create_answer_lacks_the_id_fails_clearly(odd, operator):
    odd.answer = Answer("json-object-200", 200, "application/json", b"{}", None)
    ctx = context() | {"dag_run": SimpleNamespace(run_after=datetime.now(timezone.utc))}
    ctx["ti"].xcom_push = lambda **kw: None
    try:
        _operator(operator).execute(ctx)
    except (KeyError, AttributeError, TypeError, IndexError) as exc:
        pytest.fail(f"{type(exc).__name__} instead of a clear error: {exc!r}")
    except Exception:
        pass
