"""The README's "Testing your own DAGs" project, as a new user meets it: the provider's wheel installed in a
fresh venv (Airflow at the versions uv.lock pins), exactly the README's files written out, plain `pytest`.

The files are parsed from the README section (each fenced block preceded by a line holding its path in
backticks; the command is the section's ``shell`` block), so the README and this test cannot drift.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Testing your own DAGs"
FILE_BLOCK = re.compile(r"^`(?P<path>[\w./-]+)`\n+```\w*\n(?P<body>.*?)^```$", re.M | re.S)
COMMAND_BLOCK = re.compile(r"^```shell\n(?P<command>.*?)^```$", re.M | re.S)


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"{SECTION}\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


def readme_project() -> tuple[dict[str, str], list[str]]:
    """The section's files (path -> text) and its command."""
    section = readme_section()
    files = {m["path"]: m["body"] for m in FILE_BLOCK.finditer(section)}
    commands = [m["command"].strip() for m in COMMAND_BLOCK.finditer(section)]
    assert len(commands) == 1, f"the section has one `shell` block, the command: {commands}"
    return files, shlex.split(commands[0])


def test_the_readme_section_is_a_whole_project():
    files, command = readme_project()
    assert set(files) == {"conftest.py", "dags/retrain.py", "tests/test_retrain.py"}
    assert command == ["pytest"]


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def uv_command() -> list[str]:
    """uv as ./dev runs it (``python3 -m uv``, ``$PYTHON`` if set), else the one on PATH."""
    for python in (os.environ.get("PYTHON"), "python3"):
        if python and subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    found = shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the wheel: `python3 -m pip install uv`", pytrace=False)
    return [found]


def test_a_new_users_project_from_the_readme_passes_with_the_built_wheel(tmp_path):
    uv = uv_command()
    # uv's lock files and the user's own temp files land in tmp_path: the suite leaves nothing in /tmp.
    temp = tmp_path / "tmp"
    temp.mkdir()
    uv_env = os.environ | {"TMPDIR": str(temp)}
    # The wheel, built as a user would build it from a clone (into tmp_path: nothing left in the tree).
    run([*uv, "build", "--wheel", "-q", "--out-dir", str(tmp_path / "dist")], cwd=ROOT, env=uv_env)
    (wheel,) = (tmp_path / "dist").glob("airflow_provider_modelreg-*.whl")
    # A fresh venv with the wheel and pytest, every version constrained to uv.lock (reproducible; the warm cache).
    venv = tmp_path / "venv"
    run([*uv, "venv", "-q", "--python", sys.executable, str(venv)], env=uv_env)
    constraints = tmp_path / "constraints.txt"
    run(
        [*uv, "export", "-q", "--locked", "--no-emit-project", "--no-hashes", "-o", str(constraints)],
        cwd=ROOT,
        env=uv_env,
    )
    python = venv / "bin" / "python"
    run(
        [*uv, "pip", "install", "-q", "--python", str(python), "-c", str(constraints), str(wheel), "pytest"], env=uv_env
    )

    project = tmp_path / "project"
    files, command = readme_project()
    for path, text in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text, encoding="utf-8")
    # A new user's shell: the venv on PATH, a fresh AIRFLOW_HOME (never migrated), none of this suite's settings.
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "AIRFLOW_HOME": str(home / "airflow"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(temp),
    }
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, f"{summary}\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert re.search(r"\b3 passed\b", summary), summary
    assert not re.search(r"failed|error", summary), summary
    # What the plugin and the sandbox made in the user's temp directory is gone; pytest keeps its own
    # pytest-of-<user> folders by design.
    assert [p.name for p in temp.iterdir() if not p.name.startswith(("pytest-of-", "uv-"))] == []
