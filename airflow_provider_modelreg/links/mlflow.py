"""Extra link from an MLflow task to its run's page, and the one rule for where that page is.

A link must open a page a person can read, or not be shown:

* open-source MLflow serves its UI at the tracking URI; a run's page is the UI's hash route
  ``#/experiments/<experiment id>/runs/<run id>`` (tests/operators/test_mlflow.py opens it on a real
  ``mlflow server``, the production-shaped test in a real browser);
* OCI AI Data Platform serves only the API at its endpoint (``datalake.<region>...``): the API root plus
  MLflow's route is a 404. Its Workbench has a per-instance address opened from the OCI console, and no
  documented address for a run (Oracle's docs, aidp-python-client and aidp-cli 5.1.1 carry none: the
  ``run_link`` of a model version is a field the caller fills). So an ``oci_aidp`` run gets a link only
  when the connection's ``ui_url`` says where run pages are.

``ui_url`` (a form field of both types) is either a template with ``{experiment_id}`` and ``{run_id}``
(the address a browser shows for a run, ids replaced) or the base URL of an MLflow UI, to which MLflow's
route is appended.
"""

from __future__ import annotations

from string import Formatter
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

MLFLOW_UI_RUN_ROUTE = "/#/experiments/{experiment_id}/runs/{run_id}"
RUN_URL_FIELDS = frozenset({"experiment_id", "run_id"})


def run_url_template(ui_url: Any) -> str:
    """The run-page template a ``ui_url`` (or a tracking URI) stands for, or ValueError naming the rule.

    Nothing secret may be in a link: a URL holding credentials (``user:pw@``) is refused, and the message
    does not repeat the URL.
    """
    text = str(ui_url).strip()
    try:
        fields = {name for _, name, _, _ in Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ValueError(f"ui_url: unbalanced braces ({exc}); use {{experiment_id}} and {{run_id}}") from None
    if unknown := sorted(fields - RUN_URL_FIELDS):
        raise ValueError(f"ui_url: unknown placeholder(s) {unknown}; only {{experiment_id}} and {{run_id}} are filled")
    if fields and "run_id" not in fields:
        raise ValueError("ui_url: a template must contain {run_id} (a run's page names the run)")
    parts = urlsplit(text.replace("{", "").replace("}", ""))
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("ui_url: must be an http(s) URL with a host")
    if "@" in parts.netloc:
        raise ValueError("ui_url: must not hold credentials (user:password@); links are shown to every viewer")
    return text if fields else text.rstrip("/") + MLFLOW_UI_RUN_ROUTE


def run_url(template: str | None, experiment_id: str, run_id: str) -> str | None:
    """The run's page from a template of :func:`run_url_template`, ids quoted; None without a template."""
    if not template:
        return None
    return template.format(experiment_id=quote(str(experiment_id), safe=""), run_id=quote(str(run_id), safe=""))


class MlflowRunLink(BaseOperatorLink):
    """ "MLflow run": the run's page (see the module's rule); not shown when there is none.

    The task stores the URL in XCom (``persist``) as soon as its run exists, so the link also works for a
    task that failed while logging.
    """

    name: ClassVar[str] = "MLflow run"  # type: ignore[misc]
    key: ClassVar[str] = "mlflow_run"

    @classmethod
    def persist(cls, context: Any, *, url: str | None, experiment_id: str, run_id: str) -> None:
        """Remember the run's URL and ids (nothing secret)."""
        context["ti"].xcom_push(key=cls.key, value={"url": url, "experiment_id": experiment_id, "run_id": run_id})

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.key)
        # "" is no link: Airflow's API answers null and the UI shows no button.
        return str(value.get("url") or "") if isinstance(value, dict) else ""
