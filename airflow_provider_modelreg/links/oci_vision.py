"""Extra link from an OCI Vision task to its model in the OCI console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class OCIVisionModelLink(BaseOperatorLink):
    """ "OCI Vision model": the model's page in the OCI console.

    The task stores the model id and region in XCom (``persist``) while it runs; the link is built from
    that XCom, so it also works for a task that failed after creating its model.
    """

    name: ClassVar[str] = "OCI Vision model"  # type: ignore[misc]
    key: ClassVar[str] = "oci_vision_model"
    url_template: ClassVar[str] = "https://cloud.oracle.com/vision/models/{model_id}"

    @classmethod
    def persist(cls, context: Any, *, model_id: str, region: str | None, work_request_id: str | None = None) -> None:
        """Remember what the link needs (ids only: nothing secret)."""
        value = {"model_id": model_id, "region": region, "work_request_id": work_request_id}
        context["ti"].xcom_push(key=cls.key, value=value)

    @classmethod
    def url(cls, model_id: str, region: str | None) -> str:
        base = cls.url_template.format(model_id=quote(model_id, safe=""))
        return f"{base}?{urlencode({'region': region})}" if region else base

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.key)
        if not isinstance(value, dict) or not value.get("model_id"):
            return ""
        return self.url(str(value["model_id"]), value.get("region"))
