"""OpenLineage for the create operators: which training data made which model (or model version).

Each create operator says what it read and what it made through one small hook, ``lineage(resource)``,
returning a :class:`ModelLineage` of plain :class:`DatasetName` values; the base operator's
``get_openlineage_facets_on_complete`` turns it into the OpenLineage provider's ``OperatorLineage`` here.
This module imports nothing of OpenLineage at module level: :func:`to_operator_lineage` does, and the base
operator imports this module only when the provider asks for lineage, so a DAG file's import cost is
unchanged and nothing is needed when the provider is not installed.

Names follow OpenLineage's dataset naming spec where it has an entry: a URI's namespace is
``scheme://authority`` and its name the path (the spec's rule for S3, GCS, HDFS, ...). The spec has no
entry for OCI Object Storage, OCI Data Labeling, MLflow, NeMo or HappyRobot, so:

* OCI Object Storage: namespace ``oci://{bucket}@{namespace}``, name the object (OCI's own URI form, as its
  HDFS connector and Data Flow write it, split as the spec splits ``s3://``);
* OCI Data Labeling dataset: namespace ``oci://datalabeling``, name the dataset's OCID (OCIDs are unique);
* a service's own resources (models, runs, samples, filesets): namespace the API's base URL (the service
  instance), name the resource's path-like id (``models/{id}``, ``runs/{run_id}``, ...). A model version
  is the registered model ``models/{name}`` with OpenLineage's ``version`` dataset facet, so the versions of
  one model are one dataset's history.

The output also carries the ``modelRegistry`` facet: service, id, version and lifecycle state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

FACET_NAME = "modelRegistry"
# The package's page names the producer; the facet is described in this module (no published JSON schema).
PRODUCER = "https://pypi.org/project/airflow-provider-modelreg/"
FACET_SCHEMA_URL = f"{PRODUCER}#ModelRegistryDatasetFacet"


@dataclass(frozen=True)
class DatasetName:
    """One OpenLineage dataset: its namespace and name."""

    namespace: str
    name: str


@dataclass(frozen=True)
class ModelLineage:
    """What a create operator read (``inputs``) and made (``output``, with the registry facet's fields)."""

    output: DatasetName
    service: str
    resource_id: str
    version: str | None = None
    state: str | None = None
    inputs: Sequence[DatasetName] = field(default_factory=tuple)


# -- naming ------------------------------------------------------------------------------------------
def uri_dataset(uri: str) -> DatasetName | None:
    """A dataset named by a URI, as the spec names object stores: ``scheme://authority`` and the path."""
    parts = urlsplit(str(uri))
    if not parts.scheme or not (parts.netloc or parts.path.strip("/")):
        return None
    if not parts.netloc:  # scheme:/path (e.g. MLflow's runs:/...): the first segment stands as the authority
        head, _, rest = parts.path.strip("/").partition("/")
        return DatasetName(f"{parts.scheme}://{head}", rest or "/")
    return DatasetName(f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/") or "/")


def oci_object(namespace: str, bucket: str, object_name: str) -> DatasetName:
    return DatasetName(f"oci://{bucket}@{namespace}", object_name)


def oci_dataset(spec: Mapping[str, Any] | None) -> DatasetName | None:
    """An OCI Vision dataset argument (``datasetType`` with its fields; snake_case or camelCase keys)."""
    if not isinstance(spec, Mapping):
        return None

    def get(snake: str) -> Any:
        head, *rest = snake.split("_")
        return spec.get(snake, spec.get(head + "".join(p.title() for p in rest)))

    kind = str(get("dataset_type") or "").upper()
    if kind == "OBJECT_STORAGE" and get("namespace_name") and get("bucket_name") and get("object_name"):
        return oci_object(str(get("namespace_name")), str(get("bucket_name")), str(get("object_name")))
    if kind == "DATA_SCIENCE_LABELING" and get("dataset_id"):
        return DatasetName("oci://datalabeling", str(get("dataset_id")))
    return None


def service_dataset(base_url: str, name: str) -> DatasetName:
    return DatasetName(str(base_url).rstrip("/"), name)


def unique(datasets: Sequence[DatasetName | None]) -> tuple[DatasetName, ...]:
    """The datasets without None and without repeats, in order."""
    return tuple(dict.fromkeys(d for d in datasets if d is not None))


# -- OpenLineage objects (imported only here) ----------------------------------------------------------
@cache
def _facet_class() -> type:
    import attr
    from openlineage.client.facet_v2 import DatasetFacet

    @attr.define
    class ModelRegistryDatasetFacet(DatasetFacet):
        """Which registry resource a dataset is: service, id, version and lifecycle state."""

        service: str
        id: str
        version: str | None = None
        lifecycleState: str | None = None  # OpenLineage spells facet fields in camelCase

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return ModelRegistryDatasetFacet


def registry_facet(lineage: ModelLineage) -> Any:
    return _facet_class()(
        service=lineage.service,
        id=lineage.resource_id,
        version=lineage.version,
        lifecycleState=lineage.state,
        producer=PRODUCER,
    )


def to_operator_lineage(lineage: ModelLineage) -> Any:
    """The OpenLineage provider's ``OperatorLineage`` for ``lineage``."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import dataset_version_dataset

    facets: dict[str, Any] = {FACET_NAME: registry_facet(lineage)}
    if lineage.version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=lineage.version, producer=PRODUCER
        )
    output = Dataset(namespace=lineage.output.namespace, name=lineage.output.name, facets=facets)
    inputs = [Dataset(namespace=d.namespace, name=d.name) for d in lineage.inputs]
    return OperatorLineage(inputs=inputs, outputs=[output])
