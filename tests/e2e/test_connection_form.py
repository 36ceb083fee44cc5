"""The connection form in Chromium on whichever Airflow line runs this test: its own API server (on the
session's SQLite metadata DB), Airflow's React UI, each connection type of the provider chosen in the "Add
Connection" dialog as a person would. ``./dev test`` runs it on every line (3.0, 3.1, 3.2 and 3.3); on 3.3
tests/e2e/test_production.py also saves a connection through the form and uses it.

Which Airflow reads what: 3.2+ builds the form from the provider info's ``conn-fields``; 3.0 and 3.1 from the
hooks' ``get_connection_form_widgets``/``get_ui_field_behaviour`` (generated from the same declaration). Both
hand the UI each secret marked ``format: password``; whether the UI then masks it is the line's own doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.processes import stop_group

from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES
from airflow_provider_modelreg.version_compat import AIRFLOW_VERSION

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,  # the lines' passes, which leave out e2e tests, take this one (see `dev`)
    pytest.mark.integration,
    pytest.mark.airflow_feature("connection form in Chromium"),
]

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).parent / "connection_form.py"
BROWSER_PYTHON = ROOT / ".venv-prod" / "bin" / "python"  # selenium lives there, not in the lines' venvs
STANDARD_FIELDS = ("host", "schema", "login", "password", "port")

# Up to 3.2 Airflow's React UI draws every extra field as a plain text input, the secrets too, though the
# API marks them ``format: password`` (seen in this test on 3.0.6, 3.1.8 and 3.2.2; a limitation of those UIs,
# docs/airflow-versions.md). 3.3's UI masks them. The standard password field is masked on every line.
UI_MASKS_EXTRA_SECRETS = (AIRFLOW_VERSION.major, AIRFLOW_VERSION.minor) >= (3, 3)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def api_server(airflow_db: None, tmp_path: Path) -> Iterator[str]:
    """``airflow api-server`` of this line on loopback, on the session's metadata DB; its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),  # this tree's provider
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
        }
    )
    log = tmp_path / "api-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not answers(f"{base}/api/v2/monitor/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the API server did not come up:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)  # polling interval of the deadline-bound wait above
        yield base
    finally:
        stop_group(proc)


def test_each_connection_type_shows_its_fields_labels_and_masks_in_chromium(api_server: str, tmp_path: Path):
    """Every connection type of the provider, chosen in one "Add Connection" dialog: the standard fields it
    keeps (relabelled as declared), each declared extra field under its label, and the secrets masked where
    this line's UI masks extra fields (3.3; the standard password field on every line)."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        pytest.fail("Debian's chromium and chromium-driver are not installed (./dev setup installs them)")
    if not BROWSER_PYTHON.exists():
        pytest.fail(".venv-prod (selenium) is missing: ./dev setup makes it")
    plan = {
        "base": api_server,
        "screenshots": str(tmp_path / "shots"),
        "inspect": [d["hook-name"] for d in CONNECTION_TYPES],
        "extra_fields": {d["hook-name"]: list(d["conn-fields"]) for d in CONNECTION_TYPES},
    }
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    done = subprocess.run(
        [str(BROWSER_PYTHON), str(DRIVER), str(tmp_path / "plan.json")], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    print(f"Airflow {AIRFLOW_VERSION}: browser {seen['seconds']} s\n{done.stderr}")
    assert "error" not in seen, f"{seen['error']} (screenshots in {tmp_path / 'shots'})"

    for definition in CONNECTION_TYPES:
        kind = definition["connection-type"]
        fields = {f["name"]: f for f in seen["forms"][definition["hook-name"]]}
        behaviour = definition["ui-field-behaviour"]
        declared = {f"element_{name}": spec for name, spec in definition["conn-fields"].items()}
        standard = {n for n in STANDARD_FIELDS if n not in behaviour["hidden-fields"]}
        assert set(fields) == {"connection_id", "description", *standard, *declared}, kind
        assert all(f["shown"] for f in fields.values()), kind
        for name, spec in declared.items():
            assert fields[name]["label"] == spec["label"], (kind, name)
            secret = spec["schema"].get("format") == "password"
            masked = fields[name]["type"] == "password"
            assert masked == (secret and UI_MASKS_EXTRA_SECRETS), (kind, name, fields[name]["type"])
        for name, label in behaviour.get("relabeling", {}).items():
            assert fields[name]["label"] == label, (kind, name)
        if "password" in standard:
            assert fields["password"]["type"] == "password", kind
