"""Every Airflow 3 line (3.0 to 3.3): the connection form from one declaration, and each feature a line lacks
degrading with one log line that names it and the version that brings it (version_compat.py).

Each test runs on whichever Airflow the suite runs on and asserts what that line must do; the ``airflow_feature``
marker names the row of docs/airflow-versions.md it backs (tests/conftest.py records which passed on which line).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_modelreg import version_compat
from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES
from airflow_provider_modelreg.version_compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_V_3_3_PLUS

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"


@pytest.fixture
def fresh_notes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees the process's first mention of a missing feature."""
    monkeypatch.setattr(version_compat, "_noted", set())


def notes(caplog: pytest.LogCaptureFixture, feature_words: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if feature_words in r.getMessage() and "needs Airflow" in r.getMessage()
    ]


# -- the connection form ------------------------------------------------------------------------------------
@pytest.mark.airflow_feature("connection form")
def test_the_connection_form_shows_every_declared_field_label_and_masked_secret():
    """What the API server sends the UI's connection form (Airflow's own HookMetaService): on 3.2+ read from
    conn-fields, on 3.0/3.1 from the hooks' form methods; the same fields, labels and masks on every line."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    # A providers manager initialised earlier in this process (without the form's stand-ins) is built anew.
    ProvidersManager()._cleanup()
    served = {meta.connection_type: meta for meta in HookMetaService.hook_meta_data()}
    for definition in CONNECTION_TYPES:
        meta = served[definition["connection-type"]]
        extra = meta.extra_fields or {}
        assert set(extra) == set(definition["conn-fields"]), definition["connection-type"]
        for name, field in definition["conn-fields"].items():
            schema = extra[name]["schema"]
            assert schema["title"] == field["label"], name
            if field["schema"].get("format") == "password":
                assert schema.get("format") == "password", f"{name} is not masked"
        behaviour = definition["ui-field-behaviour"]
        standard = meta.standard_fields.model_dump()  # named as the form names them ("url_schema": schema)
        for hidden in behaviour["hidden-fields"]:
            shown_as = {"schema": "url_schema"}.get(hidden, hidden)
            if shown_as in standard:
                assert standard[shown_as]["hidden"], hidden
        for field_name, label in behaviour["relabeling"].items():
            assert standard[field_name]["title"] == label, field_name


def test_the_form_methods_sit_on_each_hook_only_where_airflow_reads_them():
    """3.0/3.1's providers manager reads a hook's own ``__dict__``; 3.2+ warns when a hook defines them."""
    for definition in CONNECTION_TYPES:
        module, _, name = definition["hook-class-name"].rpartition(".")
        hook = getattr(__import__(module, fromlist=[name]), name)
        own = "get_connection_form_widgets" in hook.__dict__ and "get_ui_field_behaviour" in hook.__dict__
        assert own is (not version_compat.FORM_FROM_PROVIDER_INFO), name


# -- features a line lacks ---------------------------------------------------------------------------------
@pytest.mark.airflow_feature("task state store")
def test_the_task_state_store_or_variables_and_one_line_saying_so(fresh_notes, caplog):
    from airflow_provider_modelreg import task_state

    caplog.set_level(logging.WARNING)
    context: dict[str, Any] = {}  # what a context holds before 3.3 (no task_state_store)
    for _ in range(3):
        task_state._store(context)
    said = notes(caplog, "task state store")
    if AIRFLOW_V_3_3_PLUS:
        assert said == []
    else:
        assert len(said) == 1
        assert "needs Airflow 3.3" in said[0] and "Variable" in said[0]


@pytest.mark.airflow_feature("trigger on_kill")
def test_a_deferred_wait_says_once_when_its_trigger_cannot_cancel_on_kill(fresh_notes, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        version_compat.note_if_no_trigger_on_kill()
    said = notes(caplog, "on_kill")
    from airflow.triggers.base import BaseTrigger

    if AIRFLOW_V_3_3_PLUS:
        assert said == [] and hasattr(BaseTrigger, "on_kill")
    else:
        assert len(said) == 1 and "needs Airflow 3.3" in said[0]


@pytest.mark.airflow_feature("start_from_trigger")
def test_a_sensor_started_on_a_worker_says_once_when_the_scheduler_ignored_start_from_trigger(fresh_notes, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(2):
        version_compat.note_if_no_start_from_trigger()
    said = notes(caplog, "start_from_trigger")
    if AIRFLOW_V_3_3_PLUS:
        assert said == []
    else:
        assert len(said) == 1 and "needs Airflow 3.3" in said[0] and "deferrable" in said[0]


@pytest.mark.airflow_feature("asset state store")
def test_the_registry_watch_keeps_its_watermark_in_memory_without_an_asset_state_store(fresh_notes, caplog):
    from airflow_provider_modelreg.registry_watch import MlflowRegistryEventTrigger

    caplog.set_level(logging.WARNING)
    trigger = MlflowRegistryEventTrigger(name="m", conn_id="mlflow_default", poll_interval=1)

    async def round_trip() -> Any:
        await trigger.save_watermark({"through": 4, "also": []})
        await trigger.save_watermark({"through": 5, "also": []})
        return await trigger.load_watermark()

    assert asyncio.run(round_trip()) == {"through": 5, "also": []}
    said = notes(caplog, "asset state store")
    if AIRFLOW_V_3_3_PLUS:
        assert said == []
    else:
        assert len(said) == 1 and "needs Airflow 3.3" in said[0]


@pytest.mark.airflow_feature("human-in-the-loop example")
def test_the_approval_example_is_defined_only_where_hitl_exists(fresh_notes, caplog, airflow_db):
    caplog.set_level(logging.WARNING)
    bag = version_compat.dag_bag(str(EXAMPLES / "approve_and_promote.py"))
    assert bag.import_errors == {}
    if AIRFLOW_V_3_1_PLUS:
        assert "approve_and_promote" in bag.dag_ids
    else:
        assert bag.dag_ids == []
        (said,) = notes(caplog, "Human-in-the-loop")
        assert "needs Airflow 3.1" in said


@pytest.mark.airflow_feature("durable")
def test_durable_is_airflows_resumable_job_parameter_where_airflow_has_it():
    """Same name, same default, same meaning as Airflow 3.3's ResumableJobMixin (operators/base.py says why
    the operators do not inherit it); on older lines the parameter is there all the same."""
    import inspect

    from airflow_provider_modelreg.operators.base import CreateAndWaitOperator
    from airflow_provider_modelreg.operators.happyrobot import HappyRobotCreateModelOperator

    ours = inspect.signature(CreateAndWaitOperator.__init__).parameters["durable"]
    assert ours.default is True and ours.kind is inspect.Parameter.KEYWORD_ONLY
    op = HappyRobotCreateModelOperator(
        task_id="t", use_case_id="u", name="n", from_model_id="a" * 24, train_sample_ids=["s"], test_sample_ids=["t"]
    )
    assert op.durable is True and op.external_id_key == "happyrobot"
    try:
        from airflow.sdk.bases.resumablejobmixin import ResumableJobMixin
    except ImportError:
        assert not AIRFLOW_V_3_3_PLUS
        return
    theirs = inspect.signature(ResumableJobMixin.__init__).parameters["durable"]
    assert theirs.default is True and theirs.kind is inspect.Parameter.KEYWORD_ONLY


def test_a_version_is_read_from_its_base_release():
    assert version_compat.AIRFLOW_VERSION.release[0] == 3
    assert (
        type(version_compat.AIRFLOW_VERSION)(version_compat.AIRFLOW_VERSION.base_version)
        == version_compat.AIRFLOW_VERSION
    )
