"""The API key the sandbox's OCI services accept, and the connections that reach a running sandbox."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from airflow_provider_modelreg.sandbox.state import SandboxState

OCI_KEY_ID = "ocid1.tenancy.oc1..sandbox/ocid1.user.oc1..sandbox/00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
HAPPYROBOT_API_KEY = "sandbox-happyrobot-key"


def register_oci_key(state: SandboxState, key_file: str | Path | None = None) -> str:
    """Register an API key's public half with the sandbox and return the path of its private half.

    With ``key_file`` the key lives there: loaded when the file exists, made (mode 0600) when it does not,
    so a restarted sandbox accepts the connections it printed before. Without it, a fresh key is written
    to a private temporary file for this run only.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = Path(key_file).expanduser() if key_file else None
    if path is not None and path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        if path is None:
            fd, name = tempfile.mkstemp(prefix="modelreg-sandbox-oci-", suffix=".pem")  # created 0600
            path = Path(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    state.oci_public_keys[OCI_KEY_ID] = public.decode()
    return str(path)


def sandbox_connections(url: str, key_file: str) -> dict[str, dict[str, object]]:
    """Airflow connections (``AIRFLOW_CONN_<ID>`` JSON) for every service of the sandbox at ``url``."""
    tenancy, user, fingerprint = OCI_KEY_ID.split("/")
    oci = {"tenancy": tenancy, "user": user, "fingerprint": fingerprint, "key_file": key_file, "region": "us-ashburn-1"}
    return {
        "happyrobot_default": {
            "conn_type": "happyrobot",
            "host": f"{url}/api/v1",
            "password": HAPPYROBOT_API_KEY,
        },
        "oci_default": {"conn_type": "oci", "host": url, "extra": oci},
        "oci_aidp_default": {
            "conn_type": "oci_aidp",
            "host": url,
            "extra": oci | {"ai_data_platform_id": "ocid1.aidataplatform.oc1..sandbox", "workspace_key": "sandbox"},
        },
        "nemo_default": {"conn_type": "nemo_platform", "host": url},
        # the open-source MLflow flavour (no auth), at /api/2.0/mlflow/ as on a real tracking server
        "mlflow_default": {"conn_type": "mlflow", "host": url},
    }
