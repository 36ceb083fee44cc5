"""Provider metadata for Airflow: connection types (declarative ``conn-fields``), hooks, operators, ...

This module is the single source of the connection forms: the hooks' Python form methods
(``get_connection_form_widgets`` / ``get_ui_field_behaviour``) are derived from the dicts here.
It imports nothing but the standard library, so the providers manager can read it cheaply.
"""

from __future__ import annotations

from typing import Any

PACKAGE = "airflow_provider_modelreg"


def _text(label: str, description: str | None = None, default: Any = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    field: dict[str, Any] = {"label": label, "schema": schema}
    if description:
        field["description"] = description
    return field


def _secret(label: str, description: str | None = None) -> dict[str, Any]:
    field = _text(label, description)
    field["schema"]["format"] = "password"  # the UI masks it and the providers manager marks it sensitive
    return field


def _number(label: str, default: float, description: str) -> dict[str, Any]:
    return {
        "label": label,
        "schema": {"type": ["number", "null"], "default": default},
        "description": description,
    }


TRANSPORT_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": _number("Timeout (s)", 30, "Per-request timeout in seconds."),
    "ca_bundle": _text(
        "CA bundle path",
        "Path to a PEM CA bundle used to verify the service's TLS certificate. TLS verification is always on "
        "unless 'verify' is set to false.",
    ),
    "verify": {
        "label": "Verify TLS",
        "schema": {"type": ["boolean", "null"], "default": True},
        "description": "Verify the service's TLS certificate (default true).",
    },
    "retry_max_attempts": {
        "label": "Retry: attempts",
        "schema": {"type": ["integer", "null"], "minimum": 1},
        "description": "Attempts per request on 429, 5xx and connection errors (default 6; OCI 8).",
    },
    "retry_max_seconds": {
        "label": "Retry: time budget (s)",
        "schema": {"type": ["number", "null"], "minimum": 0},
        "description": "Longest time one request may spend retrying (default 300; OCI 600).",
    },
    "max_connections": {
        "label": "Max connections per triggerer",
        "schema": {"type": ["integer", "null"], "minimum": 1},
        "description": "Requests in flight at once from all deferred waits on this connection in one "
        "triggerer (default 10); raise it for a slow host with many waits.",
    },
    "requests_per_second": {
        "label": "Requests per second to this host",
        "schema": {"type": ["number", "null"], "minimum": 0.01},
        "description": "Budget shared by every wait, sync poll and create in one process (default 20; "
        "loopback hosts uncapped); a 429 slows them all.",
    },
}

# The ways an OCI connection authenticates (auth/oci.py reads them from here; the first four are
# apache-airflow-providers-oci's names).
OCI_AUTH_TYPES = (
    "api_key",
    "config_file",
    "instance_principal",
    "resource_principal",
    "security_token",
    "workload_identity",
)

OCI_CREDENTIAL_FIELDS: dict[str, dict[str, Any]] = {
    "auth_type": {
        "label": "Authentication",
        # values_display: what Airflow's form shows for an option (its unset one would read "null").
        "schema": {
            "type": ["string", "null"],
            "enum": [*OCI_AUTH_TYPES, None],
            "values_display": {"null": "derived from the fields filled in"},
        },
        "description": "api_key (the fields below), config_file (an OCI config profile), security_token "
        "(a session token file), instance_principal (OCI Compute), resource_principal (RPv2.2 variables) or "
        "workload_identity (OKE). Blank: derived from what is filled (API-key fields win over the profile).",
    },
    "tenancy": _text("Tenancy OCID"),
    "user": _text("User OCID"),
    "fingerprint": _text("API key fingerprint"),
    "private_key": _secret("Private key (PEM)", "Inline PEM of the API signing key."),
    "key_file": _text("Private key file", "Path to the PEM API signing key (instead of the inline key)."),
    "passphrase": _secret("Private key passphrase"),
    "region": _text("Region", "e.g. us-ashburn-1; gives the endpoint unless Host is set."),
    "config_file": _text("OCI config file", "Read credentials from this config file (e.g. ~/.oci/config)."),
    "profile": _text("OCI config profile", "Profile in the config file.", default="DEFAULT"),
    "security_token_file": _text(
        "Session token file", "Sign with a session token (keyId ST$<token>) instead of an API key."
    ),
    # Where the principals find their token services (blank: where the platform puts them, as the oci SDK).
    "metadata_base_url": _text(
        "Instance metadata URL",
        "instance_principal: blank means OCI_METADATA_BASE_URL, else http://169.254.169.254/opc/v2.",
    ),
    "federation_endpoint": _text(
        "Federation endpoint", "instance_principal: blank means https://auth.<region>.<realm domain>/v1/x509."
    ),
    "service_account_token_file": _text(
        "Service account token file",
        "workload_identity: blank means /var/run/secrets/kubernetes.io/serviceaccount/token.",
    ),
    "proxymux_endpoint": _text(
        "OKE token exchange URL",
        "workload_identity: blank means https://$KUBERNETES_SERVICE_HOST:12250/resourcePrincipalSessionTokens.",
    ),
}


def _ui_url(blank: str) -> dict[str, Any]:
    return _text(
        "Run page URL",
        "Where a person reads a run (the tasks' \"MLflow run\" link): the address of a run's page with "
        "{experiment_id} and {run_id} in place of the ids, or the base URL of an MLflow UI. " + blank,
    )


AIDP_FIELDS: dict[str, dict[str, Any]] = {
    "ai_data_platform_id": _text("AI Data Platform OCID"),
    "workspace_key": _text("Workspace key", "Workspace of the tracking API (experiments and runs)."),
    "dh_user_principal": _text("DH user principal", "Sent as the dh-user-principal header when set."),
    "ui_url": _ui_url(
        "Blank: no link (the endpoint serves only the API, and Workbench run pages have no documented address)."
    ),
}

CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "hook-class-name": f"{PACKAGE}.hooks.happyrobot.HappyRobotHook",
        "hook-name": "HappyRobot",
        "connection-type": "happyrobot",
        "conn-fields": {
            "organization_id": _text("Organization id", "Sent as the x-organization-id header when set."),
            **TRANSPORT_FIELDS,
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "extra"],
            "relabeling": {"host": "Base URL", "password": "API key"},
            "placeholders": {"host": "https://app.happyrobot.ai/api/v1"},
        },
    },
    {
        "hook-class-name": f"{PACKAGE}.hooks.oci_vision.OCIVisionHook",
        "hook-name": "Oracle Cloud Infrastructure",
        # Not "oci": apache-airflow-providers-oci declares that type (two providers declaring one type
        # collide in the UI). Its "oci" connections work with these hooks as they are (README).
        "connection-type": "oci_vision",
        "conn-fields": {**OCI_CREDENTIAL_FIELDS, **TRANSPORT_FIELDS},
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "password", "extra"],
            "relabeling": {"host": "Endpoint override"},
            "placeholders": {"host": "https://vision.aiservice.us-ashburn-1.oci.oraclecloud.com"},
        },
    },
    {
        "hook-class-name": f"{PACKAGE}.hooks.mlflow.OCIDataPlatformMlflowHook",
        "hook-name": "OCI AI Data Platform (MLflow)",
        "connection-type": "oci_aidp",
        "conn-fields": {**AIDP_FIELDS, **OCI_CREDENTIAL_FIELDS, **TRANSPORT_FIELDS},
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "password", "extra"],
            "relabeling": {"host": "Endpoint override"},
            "placeholders": {"host": "https://datalake.us-ashburn-1.oci.oraclecloud.com"},
        },
    },
    {
        "hook-class-name": f"{PACKAGE}.hooks.mlflow.MlflowHook",
        "hook-name": "MLflow tracking server",
        "connection-type": "mlflow",
        "conn-fields": {
            "auth_type": {
                "label": "Auth type",
                "schema": {
                    "type": ["string", "null"],
                    "enum": ["none", "basic", "bearer"],
                    "default": "none",
                },
                "description": "none, basic (login and password) or bearer (password is the token).",
            },
            "ui_url": _ui_url("Blank: the MLflow UI the tracking server serves at its URI."),
            **TRANSPORT_FIELDS,
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"host": "Tracking URI", "password": "Password or token"},
            "placeholders": {"host": "http://127.0.0.1:5000"},
        },
    },
    {
        "hook-class-name": f"{PACKAGE}.hooks.nemo.NemoModelsHook",
        "hook-name": "NVIDIA NeMo Platform",
        "connection-type": "nemo_platform",
        "conn-fields": {
            "workspace": _text(
                "Default workspace", "Workspace used when a task gives none, and listed by Test connection.", "default"
            ),
            "name_rule": _text(
                "Name rule",
                "Empty: today's platform rule (nemo-platform 0.4.0 and later). 0.3: the looser rule of platforms "
                "before 0.4.0.",
            ),
            **TRANSPORT_FIELDS,
        },
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login", "extra"],
            "relabeling": {"host": "Base URL (NMP_BASE_URL)", "password": "Access token (optional)"},
            "placeholders": {"host": "http://nemo-platform.example:8080"},
        },
    },
]

INTEGRATIONS = {
    "happyrobot": "HappyRobot",
    "oci_vision": "OCI AI Vision",
    "mlflow": "MLflow (OCI AI Data Platform and open-source)",
    "nemo": "NVIDIA NeMo Platform",
}

# Each integration's vendor API reference (Airflow's provider schema: integrations[].external-doc-url).
EXTERNAL_DOC_URLS = {
    "happyrobot": "https://docs.happyrobot.ai/api-reference/models/",
    "oci_vision": "https://docs.oracle.com/en-us/iaas/api/#/en/vision/20220125/",
    "mlflow": "https://mlflow.org/docs/latest/api_reference/rest-api.html",
    "nemo": "https://docs.nvidia.com/nemo-helix/documentation/reference/api-reference/models/"
    "create-model-apis-models-v-2-workspaces-workspace-models-post",
}

# Modules holding the triggers each integration ships (`airflow providers triggers` lists them): every
# wait runs the one LifecycleTrigger; MLflow adds the registry's event trigger for AssetWatchers.
TRIGGER_MODULES = {
    "happyrobot": [f"{PACKAGE}.lifecycle"],
    "oci_vision": [f"{PACKAGE}.lifecycle"],
    "mlflow": [f"{PACKAGE}.lifecycle", f"{PACKAGE}.registry_watch"],
    "nemo": [f"{PACKAGE}.lifecycle"],
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-modelreg",
        "name": "Model registry (OCI AI Vision, OCI AI Data Platform, MLflow, NVIDIA NeMo, HappyRobot)",
        "description": "Train models, log runs and register model versions from Airflow DAGs.",
        "versions": ["0.1.0"],
        "integrations": [
            {"integration-name": name, "external-doc-url": EXTERNAL_DOC_URLS[module], "tags": ["service"]}
            for module, name in INTEGRATIONS.items()
        ],
        "hooks": [
            {"integration-name": name, "python-modules": [f"{PACKAGE}.hooks.{module}"]}
            for module, name in INTEGRATIONS.items()
        ],
        "operators": [
            {"integration-name": name, "python-modules": [f"{PACKAGE}.operators.{module}"]}
            for module, name in INTEGRATIONS.items()
        ],
        "sensors": [
            {"integration-name": name, "python-modules": [f"{PACKAGE}.sensors.{module}"]}
            for module, name in INTEGRATIONS.items()
        ],
        "triggers": [
            {"integration-name": name, "python-modules": TRIGGER_MODULES[module]}
            for module, name in INTEGRATIONS.items()
        ],
        "connection-types": CONNECTION_TYPES,
        "extra-links": [
            f"{PACKAGE}.links.oci_vision.OCIVisionModelLink",
            f"{PACKAGE}.links.mlflow.MlflowRunLink",
        ],
    }


def connection_type(conn_type: str) -> dict[str, Any]:
    """The declarative definition of one connection type (used by the hooks' form methods)."""
    for definition in CONNECTION_TYPES:
        if definition["connection-type"] == conn_type:
            return definition
    raise KeyError(conn_type)
