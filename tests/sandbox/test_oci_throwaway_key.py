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


def test_the_throwaway_key_is_removed_when_the_sandbox_stops(tmp_path: Path) -> None:
    env = os.environ | {"TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "airflow_provider_modelreg.sandbox", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(free_port())], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "AIRFLOW_CONN_OCI_DEFAULT" in line:
                break
        keys = list(tmp_path.glob("modelreg-sandbox-oci-*.pem"))
        assert len(keys) == 1 and keys[0].stat().st_mode & 0o077 == 0
        proc.send_signal(signal.SIGTERM)
        # Read its output to the end while it stops: a sandbox that logs on shutdown into a pipe nobody reads
        # blocks on a full pipe and never exits (seen on Airflow 3.0's line, whose logging says more).
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp_path.glob("modelreg-sandbox-oci-*.pem")) == []
