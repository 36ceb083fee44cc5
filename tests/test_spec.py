"""What a wait is: a spec names itself by import path, and judges any answer without crashing."""

from __future__ import annotations

import pytest

from airflow_provider_modelreg.hooks.happyrobot import MODEL_LIFECYCLE
from airflow_provider_modelreg.spec import Waiter, resolve_spec


class RecordingLogger:
    """A wait's logger that keeps its warnings (the suite's other tests may reconfigure Python's logging)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, message: str, *args: object) -> None:
        self.warnings.append(message % args)


def test_unknown_states_count_as_in_progress_and_are_logged_once():
    logger = RecordingLogger()
    waiter = Waiter(MODEL_LIFECYCLE, {"model_id": "m1"}, logger)
    observations = [waiter.evaluate({"status": s}) for s in ("queued", "queued", "training", "queued")]
    assert [o.outcome for o in observations] == ["waiting"] * 4
    assert logger.warnings == [
        "HappyRobot model model_id=m1 is in state 'queued', which is not a known state; waiting as if in progress"
    ]


@pytest.mark.parametrize(
    ("resource", "outcome"),
    [
        ({"status": "active"}, "success"),
        ({"status": "failed"}, "failure"),
        ({"status": "pending"}, "waiting"),
        ({}, "waiting"),
        ("<html>", "waiting"),
    ],
)
def test_evaluation_never_crashes_on_odd_resources(resource, outcome):
    assert Waiter(MODEL_LIFECYCLE, {"model_id": "m"}).evaluate(resource).outcome == outcome


def test_specs_are_named_by_their_import_path():
    assert resolve_spec(MODEL_LIFECYCLE.key) is MODEL_LIFECYCLE
    with pytest.raises(ValueError, match="does not name a LifecycleSpec"):
        resolve_spec("airflow_provider_modelreg.hooks.happyrobot:HappyRobotHook")
