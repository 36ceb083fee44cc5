"""The sandbox CLI's throw-away OCI key lives only while the sandbox runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "stop_after",
    [
        pytest.param("modelreg sandbox on", id="while-it-prints-its-connections"),
        pytest.param("AIRFLOW_CONN_", id="while-uvicorn-starts"),
        pytest.param("AIRFLOW_CONN_OCI_DEFAULT", id="once-it-printed-the-oci-connection"),
    ],
)
def test_the_throwaway_key_is_removed_when_the_sandbox_stops(tmp_path: Path, stop_after: str) -> None:
    """A SIGTERM at any point of the start stops the sandbox and removes the key. It once arrived while uvicorn
    imported its event loop's modules: the handler's exception was swallowed there and the sandbox served on."""
    env = os.environ | {"TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "airflow_provider_modelreg.sandbox", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(free_port())], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if stop_after in line:
                break
        keys = list(tmp_path.glob("modelreg-sandbox-oci-*.pem"))
        assert len(keys) == 1 and keys[0].stat().st_mode & 0o077 == 0
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)  # read to the end while it stops, so a full pipe cannot hold it
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp_path.glob("modelreg-sandbox-oci-*.pem")) == []
