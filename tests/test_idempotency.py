"""Idempotency keys: one per task instance, the same on every try."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_modelreg.idempotency import idempotency_key


def context(map_index: int = -1, try_number: int = 1, run_id: str = "scheduled__2026-11-23", task_id: str = "train"):
    ti = SimpleNamespace(dag_id="retrain", task_id=task_id, run_id=run_id, map_index=map_index, try_number=try_number)
    return {"ti": ti}


def test_the_key_is_the_same_on_every_try():
    assert idempotency_key(context(try_number=1)) == idempotency_key(context(try_number=3))


def test_the_key_differs_per_run_task_and_mapped_instance():
    keys = {
        idempotency_key(context()),
        idempotency_key(context(run_id="scheduled__2026-11-30")),
        idempotency_key(context(task_id="register")),
        idempotency_key(context(map_index=0)),
        idempotency_key(context(map_index=1)),
    }
    assert len(keys) == 5


def test_the_key_fits_oci_retry_tokens_and_mlflow_tags():
    key = idempotency_key(context())
    assert len(key) == 40 and key.isalnum()
