"""Extra link from an MLflow task to its run in the MLflow UI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class MlflowRunLink(BaseOperatorLink):
    """ "MLflow run": ``<MLflow UI>/#/experiments/<experiment id>/runs/<run id>``.

    The UI base is the tracking URI (plain MLflow) or the workspace's MLOps root (OCI AI Data Platform,
    whose UI path is undocumented); a connection's extra ``ui_url`` overrides either. The task stores the
    URL in XCom (``persist``) as soon as its run exists, so the link also works for a task that failed
    while logging.
    """

    name: ClassVar[str] = "MLflow run"  # type: ignore[misc]
    key: ClassVar[str] = "mlflow_run"

    @classmethod
    def persist(cls, context: Any, *, url: str, experiment_id: str, run_id: str) -> None:
        """Remember the run's URL and ids (nothing secret)."""
        context["ti"].xcom_push(key=cls.key, value={"url": url, "experiment_id": experiment_id, "run_id": run_id})

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.key)
        return str(value.get("url") or "") if isinstance(value, dict) else ""
