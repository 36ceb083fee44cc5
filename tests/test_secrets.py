"""Secrets stay secret, for every connection type: a canary in every secret field never reaches logs (captured
output and log files), XCom (every key), rendered template fields, trigger kwargs, trigger events or exception
text, on success, failure and rejected-credential paths of each operator, sensor and trigger. Every secret is
registered with Airflow's secrets masker. TLS verification is on by default and a CA bundle can be set per
connection.

Secret fields (get_provider_info's ``format: password`` fields and the connection passwords it does not hide):
happyrobot password; oci and oci_aidp private_key (an encrypted PEM: the canary is a distinctive base64 line of
it) and passphrase; mlflow password (basic and bearer); nemo_platform password (the access token). Also the
NeMo operator's ``api_endpoint.api_key``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fixtures.mlflow import PLATFORM_ID, WORKSPACE_KEY
from fixtures.oci import FINGERPRINT, KEY_ID, TENANCY, USER
from fixtures.oci_vision import vision_arguments
from fixtures.tls import self_signed

from airflow_provider_modelreg.http import RetryPolicy, tls_context
from airflow_provider_modelreg.lifecycle import LifecycleTrigger
from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator
from airflow_provider_modelreg.sandbox.state import OutcomeRule
from airflow_provider_modelreg.sensors.happyrobot import HappyRobotModelSensor

pytestmark = pytest.mark.integration

NO_RETRY = {"retries": 0}
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


# -- what is watched --------------------------------------------------------------------------------------------
@dataclass
class Watch:
    """Trigger kwargs and events of the test, and every value registered with the masker."""

    trigger_kwargs: list[dict[str, Any]] = field(default_factory=list)
    trigger_events: list[dict[str, Any]] = field(default_factory=list)
    masked: list[Any] = field(default_factory=list)


@pytest.fixture
def watch(monkeypatch: pytest.MonkeyPatch) -> Watch:
    from airflow_provider_modelreg.hooks import base

    seen = Watch()
    serialize, run = LifecycleTrigger.serialize, LifecycleTrigger.run

    def spy_serialize(self: LifecycleTrigger) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = serialize(self)
        seen.trigger_kwargs.append(kwargs)
        return classpath, kwargs

    async def spy_run(self: LifecycleTrigger) -> Any:
        async for event in run(self):
            seen.trigger_events.append(dict(event.payload))
            yield event

    real_mask = base.mask_secret

    def spy_mask(secret: Any, name: str | None = None) -> None:
        seen.masked.append(secret)
        real_mask(secret, name)

    monkeypatch.setattr(LifecycleTrigger, "serialize", spy_serialize)
    monkeypatch.setattr(LifecycleTrigger, "run", spy_run)
    monkeypatch.setattr(base, "mask_secret", spy_mask)
    return seen


def canary(kind: str = "secret") -> str:
    return f"canary-{kind}-{uuid.uuid4().hex[:16]}"


def rendered_fields(run_id: str) -> str:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(RenderedTaskInstanceFields).where(RenderedTaskInstanceFields.run_id == run_id)
        ).all()
        return json.dumps([row.rendered_fields for row in rows], default=str)


def all_xcom(run_id: str) -> str:
    """Every XCom of the run, whatever its key (links and other keys too, not only return values)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(select(XComModel).where(XComModel.run_id == run_id)).all()
        return json.dumps([[row.task_id, row.key, row.value] for row in rows], default=str)


def task_log_files() -> str:
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    return "".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()) if logs.exists() else ""


def assert_nowhere(
    needles: list[str],
    capfd: pytest.CaptureFixture[str],
    watch: Watch,
    run_id: str | None = None,
    **more: str,
) -> str:
    """No needle in any place a secret could leak to; returns the captured output for further checks."""
    out, err = capfd.readouterr()
    places = {
        "stdout/stderr (task logs)": out + err,
        "log files": task_log_files(),
        "trigger kwargs": json.dumps(watch.trigger_kwargs),
        "trigger events": json.dumps(watch.trigger_events),
        **more,
    }
    if run_id is not None:
        places["XCom"] = all_xcom(run_id)
        places["rendered template fields"] = rendered_fields(run_id)
    leaks = [(where, needle[:24]) for where, text in places.items() for needle in needles if needle in text]
    assert leaks == []
    return out + err


def assert_masked(watch: Watch, *secrets: str) -> None:
    """Registered through the provider's mask() and redacted by Airflow's masker."""
    # The masker the SDK's mask_secret feeds: airflow.sdk._shared on 3.2 and 3.3, execution_time before.
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:
        from airflow.sdk.execution_time.secrets_masker import redact

    for secret in secrets:
        assert secret in watch.masked, "not registered with the masker"
        assert secret not in str(redact(f"before {secret} after"))


def task_context(task_id: str = "t") -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="secrets", task_id=task_id, run_id="manual__1", map_index=-1, try_number=1, xcom_push=lambda **kw: None
    )
    return {"ti": ti, "dag_run": SimpleNamespace(run_after=dt.datetime.now(dt.timezone.utc))}


def dag(dag_id: str) -> Any:
    from airflow.sdk import DAG

    return DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1), default_args=NO_RETRY)


# -- OCI credentials with an encrypted key --------------------------------------------------------------------
@dataclass
class OCISecrets:
    pem: str
    passphrase: str

    @property
    def pem_line(self) -> str:
        """A distinctive base64 line from the middle of the PEM body."""
        lines = self.pem.strip().splitlines()
        return lines[len(lines) // 2]

    @property
    def needles(self) -> list[str]:
        return [self.passphrase, self.pem_line, self.pem]

    def fields(self) -> dict[str, Any]:
        return {
            "tenancy": TENANCY,
            "user": USER,
            "fingerprint": FINGERPRINT,
            "private_key": self.pem,
            "passphrase": self.passphrase,
            "region": "us-ashburn-1",
        }


def encrypted(key: rsa.RSAPrivateKey, passphrase: str) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    ).decode()


@pytest.fixture
def oci_secrets(oci_key_registered: str, oci_private_key: rsa.RSAPrivateKey) -> OCISecrets:
    """The registered test key, encrypted with a canary passphrase."""
    passphrase = canary("passphrase")
    return OCISecrets(encrypted(oci_private_key, passphrase), passphrase)


@pytest.fixture(scope="module")
def unregistered_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# == HappyRobot ===================================================================================================
@pytest.fixture
def hr_canary(sandbox: Any, happyrobot_conn: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    key = canary("happyrobot")
    sandbox.sandbox.state.happyrobot_api_keys.add(key)
    return key, happyrobot_conn | {"password": key, "extra": {"organization_id": "org"}}


def happyrobot_dag(dag_id: str, name: str) -> Any:
    with dag(dag_id) as built:
        train = HappyRobotCreateModelOperator(
            task_id="train",
            conn_id="hr",
            use_case_id="uc",
            name=name,
            from_model_id="e" * 24,
            train_sample_ids=["s"],
            test_sample_ids=[],
            deferrable=True,
            poll_interval=0.2,
        )
        wait = HappyRobotModelSensor(
            task_id="wait",
            conn_id="hr",
            model_id="{{ ti.xcom_pull('train')['id'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        train >> wait
    return built


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_happyrobot_api_key_never_leaks(run_dag, sandbox, hr_canary, capfd, watch, outcome):
    key, conn = hr_canary
    name = "ok-bot" if outcome == "success" else "doomed-bot"
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="happyrobot", match="doomed", reason="bad data"))
    result = run_dag(happyrobot_dag(f"secrets_hr_{outcome}", name), {"hr": conn})
    assert result.state == ("success" if outcome == "success" else "failed")
    assert watch.trigger_kwargs, "the run deferred, so a trigger was serialised"
    assert_nowhere([key], capfd, watch, result.run_id)
    assert_masked(watch, key)


def test_a_rejected_api_key_is_not_echoed_in_the_error(run_dag, sandbox, happyrobot_conn, capfd, watch):
    key = canary("happyrobot")
    result = run_dag(happyrobot_dag("secrets_hr_rejected", "bot"), {"hr": happyrobot_conn | {"password": key}})
    assert result.state == "failed"
    assert "HTTP 401" in assert_nowhere([key], capfd, watch, result.run_id)
    assert_masked(watch, key)


# == OCI Vision (oci) =============================================================================================
def oci_vision_dag(dag_id: str) -> Any:
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator
    from airflow_provider_modelreg.sensors.oci_vision import OCIVisionModelSensor

    fast = {"deferrable": True, "poll_interval": 0.2}
    with dag(dag_id) as built:
        train = OCIVisionCreateModelOperator(task_id="train", conn_id="oci", **(vision_arguments() | fast))
        wait = OCIVisionModelSensor(
            task_id="wait",
            conn_id="oci",
            model_id="{{ ti.xcom_pull('train')['id'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        OCIVisionCreateModelOperator(
            task_id="train_doomed", conn_id="oci", **(vision_arguments(display_name="doomed") | fast)
        )
        started = OCIVisionCreateModelOperator(
            task_id="start_doomed",
            conn_id="oci",
            wait_for_completion=False,
            **vision_arguments(display_name="doomed-2"),
        )
        wait_doomed = OCIVisionModelSensor(
            task_id="wait_doomed",
            conn_id="oci",
            model_id="{{ ti.xcom_pull('start_doomed')['id'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        train >> wait
        started >> wait_doomed
    return built


def test_oci_private_key_and_passphrase_never_leak(run_dag, sandbox, oci_secrets, capfd, watch):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="oci_vision", match="doomed", reason="bad labels"))
    conn = {"conn_type": "oci", "host": sandbox.url, "extra": json.dumps(oci_secrets.fields())}
    result = run_dag(oci_vision_dag("secrets_oci"), {"oci": conn})
    assert result.task_states() == {
        "train": "success",
        "wait": "success",
        "train_doomed": "failed",
        "start_doomed": "success",
        "wait_doomed": "failed",
    }
    assert len(watch.trigger_kwargs) >= 2 and any(e["status"] == "failure" for e in watch.trigger_events)
    assert_nowhere(oci_secrets.needles, capfd, watch, result.run_id)
    assert_masked(watch, oci_secrets.pem, oci_secrets.passphrase)


@pytest.mark.parametrize("problem", ["unregistered key", "wrong passphrase"])
def test_rejected_oci_credentials_are_not_echoed(
    sandbox, oci_secrets, unregistered_key, monkeypatch, capfd, watch, problem
):
    from airflow_provider_modelreg.operators.oci_vision import OCIVisionCreateModelOperator

    fields = oci_secrets.fields()
    if problem == "unregistered key":
        fields["private_key"] = encrypted(unregistered_key, oci_secrets.passphrase)
    else:
        fields["passphrase"] = canary("wrong-passphrase")
    monkeypatch.setenv("AIRFLOW_CONN_OCI_BAD", json.dumps({"conn_type": "oci", "host": sandbox.url, "extra": fields}))
    with pytest.raises(Exception) as failed:
        OCIVisionCreateModelOperator(task_id="t", conn_id="oci_bad", **vision_arguments()).execute(task_context())
    text = f"{failed.value!s} {failed.value!r} {failed.value.__cause__!r} {failed.value.__context__!r}"
    expected = "HTTP 401" if problem == "unregistered key" else "wrong passphrase or not a PEM RSA key"
    assert expected in text
    needles = [*oci_secrets.needles, fields["passphrase"], fields["private_key"].strip().splitlines()[5]]
    assert_nowhere(needles, capfd, watch, exception=text)


# == OCI AI Data Platform (oci_aidp) ===============================================================================
def mlflow_dag(dag_id: str, conn_id: str, names: dict[str, str], source: str | None = None) -> Any:
    """A run (logged and closed) and its sensor; a model version and its sensor; failure paths beside them."""
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator, MlflowCreateRunOperator
    from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor, MlflowRunSensor

    with dag(dag_id) as built:
        log = MlflowCreateRunOperator(
            task_id="log", conn_id=conn_id, experiment_name=names["experiment"], metrics={"acc": 0.9}
        )
        run_done = MlflowRunSensor(
            task_id="run_done", conn_id=conn_id, run_id="{{ ti.xcom_pull('log')['run_id'] }}", poke_interval=0.2
        )
        register = MlflowCreateModelVersionOperator(
            task_id="register",
            conn_id=conn_id,
            name=names["model"],
            source=source or "runs:/{{ ti.xcom_pull('log')['run_id'] }}/model",
            run_id="{{ ti.xcom_pull('log')['run_id'] }}",
            deferrable=True,
            poll_interval=0.2,
        )
        ready = MlflowModelVersionSensor(
            task_id="ready",
            conn_id=conn_id,
            name=names["model"],
            version="{{ ti.xcom_pull('register')['version'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        # Failure paths: a metric name the server refuses (the run is marked FAILED), a version that is not there.
        MlflowCreateRunOperator(
            task_id="log_refused", conn_id=conn_id, experiment_name=names["experiment"], metrics={"bad name!": 1.0}
        )
        MlflowModelVersionSensor(
            task_id="missing_version", conn_id=conn_id, name=names["model"] + "-missing", version="7", poke_interval=0.2
        )
        log >> run_done >> register >> ready
    return built


MLFLOW_STATES = {
    "log": "success",
    "run_done": "success",
    "register": "success",
    "ready": "success",
    "log_refused": "failed",
    "missing_version": "failed",
}


def test_oci_aidp_private_key_and_passphrase_never_leak(run_dag, sandbox, oci_secrets, capfd, watch):
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="mlflow", match="doomed", reason="bad flavour"))
    extra = oci_secrets.fields() | {"ai_data_platform_id": PLATFORM_ID, "workspace_key": WORKSPACE_KEY}
    conn = {"conn_type": "oci_aidp", "host": sandbox.url, "extra": json.dumps(extra)}
    built = mlflow_dag("secrets_aidp", "aidp", {"experiment": "secrets", "model": "secrets-model"})
    from airflow_provider_modelreg.operators.mlflow import MlflowCreateModelVersionOperator

    with built:  # the trigger's failure path: a registration that fails
        MlflowCreateModelVersionOperator(
            task_id="register_doomed",
            conn_id="aidp",
            name="doomed-model",
            source="oci://models/doomed",
            deferrable=True,
            poll_interval=0.2,
        )
    result = run_dag(built, {"aidp": conn})
    assert result.task_states() == MLFLOW_STATES | {"register_doomed": "failed"}
    assert any(e["status"] == "failure" for e in watch.trigger_events)
    assert_nowhere(oci_secrets.needles, capfd, watch, result.run_id)
    assert_masked(watch, oci_secrets.pem, oci_secrets.passphrase)


def test_rejected_oci_aidp_credentials_are_not_echoed(
    sandbox, oci_secrets, unregistered_key, monkeypatch, capfd, watch
):
    from airflow_provider_modelreg.sensors.mlflow import MlflowModelVersionSensor

    extra = oci_secrets.fields() | {
        "private_key": encrypted(unregistered_key, oci_secrets.passphrase),
        "ai_data_platform_id": PLATFORM_ID,
        "workspace_key": WORKSPACE_KEY,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_AIDP_BAD", json.dumps({"conn_type": "oci_aidp", "host": sandbox.url, "extra": extra})
    )
    with pytest.raises(Exception) as failed:
        MlflowModelVersionSensor(task_id="s", conn_id="aidp_bad", name="m", version=1).poke(task_context())
    text = f"{failed.value!s} {failed.value!r}"
    assert "HTTP 401" in text
    assert_nowhere([*oci_secrets.needles, extra["private_key"].strip().splitlines()[5]], capfd, watch, exception=text)


# == MLflow tracking server (mlflow): basic and bearer, against a real server =======================================
@pytest.mark.mlflow_server
@pytest.mark.parametrize("auth_type", ["basic", "bearer"])
def test_mlflow_password_and_token_never_leak(run_dag, mlflow_server, capfd, watch, auth_type):
    secret = canary(f"mlflow-{auth_type}")
    conn = {
        "conn_type": "mlflow",
        "host": mlflow_server.url,
        "login": "alice" if auth_type == "basic" else None,
        "password": secret,
        "extra": json.dumps({"auth_type": auth_type}),
    }
    suffix = uuid.uuid4().hex[:8]
    names = {"experiment": f"secrets-{suffix}", "model": f"secrets-model-{suffix}"}
    result = run_dag(mlflow_dag(f"secrets_mlflow_{auth_type}", "mlf", names), {"mlf": conn})
    assert result.task_states() == MLFLOW_STATES
    # What goes on the wire is as secret as the value: the basic-auth header's base64 too.
    needles = [secret, base64.b64encode(f"alice:{secret}".encode()).decode()]
    assert_nowhere(needles, capfd, watch, result.run_id)
    assert_masked(watch, secret)


@pytest.mark.mlflow_server
def test_mlflow_credentials_in_the_tracking_uri_never_leak(run_dag, mlflow_server, capfd, watch):
    """``http://alice:<canary>@host``: used as basic auth, shown nowhere (test_connection, repr, XCom, link)."""
    from airflow_provider_modelreg.hooks.mlflow import MlflowHook

    secret = canary("mlflow-userinfo")
    conn = {"conn_type": "mlflow", "host": mlflow_server.url.replace("://", f"://alice:{secret}@")}
    suffix = uuid.uuid4().hex[:8]
    names = {"experiment": f"secrets-ui-{suffix}", "model": f"secrets-ui-model-{suffix}"}
    result = run_dag(mlflow_dag("secrets_mlflow_userinfo", "mlf", names), {"mlf": conn})
    assert result.task_states() == MLFLOW_STATES
    os.environ["AIRFLOW_CONN_MLF_USERINFO"] = json.dumps(conn)
    try:
        hook = MlflowHook(conn_id="mlf_userinfo")
        ok, message = hook.test_connection()
        shown = {"test_connection": message, "repr": repr(hook.client), "run_url": hook.run_url("1", "r")}
    finally:
        del os.environ["AIRFLOW_CONN_MLF_USERINFO"]
    assert ok, message
    needles = [secret, base64.b64encode(f"alice:{secret}".encode()).decode()]
    assert_nowhere(needles, capfd, watch, result.run_id, **shown)
    assert_masked(watch, secret)


# == NeMo Platform (nemo_platform) ===============================================================================
def nemo_dag(dag_id: str, api_key: str) -> Any:
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator
    from airflow_provider_modelreg.sensors.nemo import NemoModelSpecSensor

    endpoint = {"url": "http://nim.local:8000/v1", "model_id": "bot", "api_key": api_key}
    with dag(dag_id) as built:
        register = NemoCreateModelOperator(
            task_id="register",
            conn_id="nemo",
            name="secret-bot",
            fileset="default/checkpoint",
            api_endpoint=endpoint,
            deferrable=True,
            poll_interval=0.2,
        )
        spec = NemoModelSpecSensor(
            task_id="spec",
            conn_id="nemo",
            name="{{ ti.xcom_pull('register')['name'] }}",
            deferrable=True,
            poke_interval=0.2,
        )
        # Failure paths: a spec that never comes ends both waits at their deadline.
        register_doomed = NemoCreateModelOperator(
            task_id="register_doomed",
            conn_id="nemo",
            name="doomed-bot",
            fileset="default/checkpoint",
            api_endpoint=endpoint,
            deferrable=True,
            poll_interval=0.2,
            wait_timeout=2,
        )
        spec_doomed = NemoModelSpecSensor(
            task_id="spec_doomed",
            conn_id="nemo",
            name="doomed-bot",
            deferrable=True,
            poke_interval=0.2,
            timeout=3,
            trigger_rule="all_done",
        )
        register >> spec
        register_doomed >> spec_doomed
    return built


def test_nemo_access_token_and_endpoint_api_key_never_leak(run_dag, sandbox, nemo_conn, capfd, watch):
    token, api_key = canary("nemo-token"), canary("nemo-api-key")
    sandbox.sandbox.state.nemo_tokens = {token}
    sandbox.sandbox.state.outcome_rules.append(OutcomeRule(service="nemo", match="doomed"))
    result = run_dag(nemo_dag("secrets_nemo", api_key), {"nemo": nemo_conn | {"password": token}})
    states = result.task_states()
    assert (states["register"], states["spec"], states["register_doomed"]) == ("success", "success", "failed")
    assert states["spec_doomed"] == "failed"
    assert any(e["status"] in ("timeout", "failure") for e in watch.trigger_events)
    assert_nowhere([token, api_key], capfd, watch, result.run_id)
    assert_masked(watch, token, api_key)


def test_a_rejected_nemo_token_is_not_echoed(sandbox, nemo_conn, monkeypatch, capfd, watch):
    from airflow_provider_modelreg.operators.nemo import NemoCreateModelOperator

    sandbox.sandbox.state.nemo_tokens = {"the-right-token"}
    token = canary("nemo-token")
    monkeypatch.setenv("AIRFLOW_CONN_NEMO_BAD", json.dumps(nemo_conn | {"password": token}))
    with pytest.raises(Exception) as failed:
        NemoCreateModelOperator(task_id="t", conn_id="nemo_bad", name="bot", workspace="default").execute(
            task_context()
        )
    text = f"{failed.value!s} {failed.value!r}"
    assert "HTTP 401" in text
    # The trigger with the same connection: its error event carries no token either.
    trigger = LifecycleTrigger(
        spec="airflow_provider_modelreg.hooks.nemo:MODEL_SPEC_LIFECYCLE",
        conn_id="nemo_bad",
        ref={"workspace": "default", "name": "bot"},
        poll_interval=0.1,
        end_time=time.time() + 5,
    )
    event = asyncio.run(first_event(trigger))
    assert event["status"] == "error" and "HTTP 401" in event["message"]
    assert_nowhere([token], capfd, watch, exception=text)
    assert_masked(watch, token)


async def first_event(trigger: LifecycleTrigger) -> dict[str, Any]:
    try:
        async for event in trigger.run():
            return dict(event.payload)
    finally:
        await trigger.cleanup()
    raise AssertionError("no event")


# == every declared secret field is covered ======================================================================
COVERED = {
    ("happyrobot", "password"),
    ("oci_vision", "private_key"),
    ("oci_vision", "passphrase"),
    ("oci_aidp", "private_key"),
    ("oci_aidp", "passphrase"),
    ("mlflow", "password"),
    ("nemo_platform", "password"),
}


def test_every_secret_field_of_every_connection_type_has_a_canary_test():
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    declared = set()
    for connection in get_provider_info()["connection-types"]:
        kind = connection["connection-type"]
        declared |= {
            (kind, name)
            for name, spec in connection.get("conn-fields", {}).items()
            if spec["schema"].get("format") == "password"
        }
        if "password" not in connection["ui-field-behaviour"].get("hidden-fields", []):
            declared.add((kind, "password"))
    assert declared == COVERED


# == TLS ==========================================================================================================
HOOKS = {
    "happyrobot": ("airflow_provider_modelreg.hooks.happyrobot", "HappyRobotHook"),
    "oci_vision": ("airflow_provider_modelreg.hooks.oci_vision", "OCIVisionHook"),
    "oci_aidp": ("airflow_provider_modelreg.hooks.mlflow", "OCIDataPlatformMlflowHook"),
    "mlflow": ("airflow_provider_modelreg.hooks.mlflow", "MlflowHook"),
    "nemo_platform": ("airflow_provider_modelreg.hooks.nemo", "NemoModelsHook"),
}


def connection(conn_type: str, host: str, oci_pem: str, **extra: Any) -> Any:
    from airflow.sdk import Connection

    fields: dict[str, Any] = dict(extra)
    password = None
    if conn_type in ("oci_vision", "oci_aidp"):
        fields |= {"tenancy": TENANCY, "user": USER, "fingerprint": FINGERPRINT, "private_key": oci_pem}
        fields |= {"region": "us-ashburn-1", "ai_data_platform_id": PLATFORM_ID, "workspace_key": WORKSPACE_KEY}
        if conn_type == "oci_vision":
            fields = {k: v for k, v in fields.items() if k not in ("ai_data_platform_id", "workspace_key")}
    elif conn_type == "happyrobot":
        password = "sandbox-happyrobot-key"
    host = f"{host}/api/v1" if conn_type == "happyrobot" else host
    return Connection(
        conn_id=f"tls_{conn_type}", conn_type=conn_type, host=host, password=password, extra=json.dumps(fields)
    )


def hook_class(conn_type: str) -> Any:
    import importlib

    module, name = HOOKS[conn_type]
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_tls_verification_is_on_by_default_and_a_ca_bundle_is_per_connection(conn_type, oci_private_pem, tmp_path):
    bundle, _key = self_signed(tmp_path)
    default = hook_class(conn_type).client_from_connection(connection(conn_type, "https://h.example", oci_private_pem))
    context = default._client_kwargs()["verify"]  # what httpx is given
    assert default.verify is True and context is tls_context(True)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    custom = hook_class(conn_type).client_from_connection(
        connection(conn_type, "https://h.example", oci_private_pem, ca_bundle=str(bundle))
    )
    context = custom._client_kwargs()["verify"]
    assert custom.verify == str(bundle) and context.verify_mode == ssl.CERT_REQUIRED
    assert [ca["subject"] for ca in context.get_ca_certs()] == [((("commonName", "modelreg test CA"),),)]
    # Switching verification off takes an explicit "verify": false; a CA bundle wins over it.
    off = hook_class(conn_type).client_from_connection(
        connection(conn_type, "https://h.example", oci_private_pem, verify=False)
    )
    assert off.verify is False
    both = hook_class(conn_type).client_from_connection(
        connection(conn_type, "https://h.example", oci_private_pem, verify=False, ca_bundle=str(bundle))
    )
    assert both.verify == str(bundle)


@pytest.fixture(scope="module")
def https_sandbox(tmp_path_factory: pytest.TempPathFactory, oci_private_key: rsa.RSAPrivateKey) -> Iterator[Any]:
    """A sandbox served over HTTPS with a self-signed certificate (its own CA)."""
    import uvicorn

    from airflow_provider_modelreg.sandbox.app import Sandbox

    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    sandbox = Sandbox()
    sandbox.state.oci_public_keys[KEY_ID] = (
        oci_private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    config = uvicorn.Config(
        sandbox.app,
        host="127.0.0.1",
        port=0,
        log_level="critical",
        lifespan="off",
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the HTTPS sandbox did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield SimpleNamespace(url=f"https://127.0.0.1:{port}", cert=str(cert))
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("conn_type", sorted(HOOKS))
def test_an_untrusted_certificate_is_refused_unless_its_ca_bundle_is_set(
    conn_type, https_sandbox, oci_private_pem, monkeypatch
):
    from airflow_provider_modelreg.version_compat import BaseHook

    def hook_on(conn: Any) -> Any:
        monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: conn))
        return hook_class(conn_type)(conn_id=conn.conn_id, retry=FAST)

    ok, message = hook_on(connection(conn_type, https_sandbox.url, oci_private_pem)).test_connection()
    assert not ok and "CERTIFICATE_VERIFY_FAILED" in message
    ok, message = hook_on(
        connection(conn_type, https_sandbox.url, oci_private_pem, ca_bundle=https_sandbox.cert)
    ).test_connection()
    assert ok, message  # the sandbox serves every flavour, the open-source MLflow one too
