"""The docs site and the README stay what a user can find their way in (the build itself, with warnings as
errors and every reference checked, is `./dev docs`, a phase of `./dev test`)."""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest

from airflow_provider_modelreg.get_provider_info import CONNECTION_TYPES, get_provider_info

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TOCTREE = re.compile(r"```\{toctree\}\n(.*?)```", re.S)


def pages() -> set[str]:
    """Every page of the site, as a toctree names it (path under docs/ without .md)."""
    return {
        str(path.relative_to(DOCS).with_suffix(""))
        for path in DOCS.rglob("*.md")
        if not path.relative_to(DOCS).parts[0].startswith("_")
    }


def toctree_entries(page: Path) -> set[str]:
    entries = set()
    for block in TOCTREE.findall(page.read_text()):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.add(str((page.parent / line).relative_to(DOCS)))
    return entries


def test_every_docs_page_is_in_a_toctree():
    listed = set().union(*(toctree_entries(DOCS / f"{page}.md") for page in pages()))
    assert pages() - {"index"} - listed == set(), "pages no toctree lists (Sphinx would only warn once)"
    assert listed - pages() == set(), "toctree entries without a page"
    assert {"architecture", "airflow-versions", "testing", "changelog", "api", "guarantees", "sandbox"} <= listed


def test_the_readme_is_a_front_door_of_at_most_150_lines():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    assert "\n## Testing your own DAGs\n" in text
    for command in ("./dev demo", "./dev test"):
        assert command in text


def test_the_readme_links_only_to_pages_that_exist():
    for target in re.findall(r"\]\(((?:docs|dags_examples)/[^)#]+)", README.read_text()):
        assert (ROOT / target).exists(), target


def marked(path: Path, name: str) -> str:
    """The text between a file's ``# [START name]`` and ``# [END name]`` markers, dedented."""
    found = re.search(rf"# \[START {name}\]\n(.*?)\n[ \t]*# \[END {name}\]", path.read_text(), re.S)
    assert found, f"{path.name} has no [START {name}] / [END {name}] markers"
    return textwrap.dedent(found.group(1))


def test_the_readme_example_is_the_example_dag_the_suite_runs():
    """README's one Python example is the marked part of dags_examples/happyrobot_train.py, word for word."""
    example = marked(ROOT / "dags_examples" / "happyrobot_train.py", "howto_operator_happyrobot_create_model")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks and blocks[0].strip() == example.strip()


def test_every_snippet_the_docs_include_has_its_markers():
    """Each `{literalinclude}` names a file and markers that exist (Sphinx's build fails on them too)."""
    include = re.compile(r"```\{literalinclude\} (\S+)\n(.*?)```", re.S)
    seen = 0
    for page in DOCS.rglob("*.md"):
        for target, options in include.findall(page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists(), (page.name, target)
            for marker in re.findall(r':(?:start-after|end-before): "(.*?)"', options):
                assert marker in path.read_text(), (page.name, target, marker)
            seen += 1
    assert seen >= 15


@pytest.mark.parametrize("definition", CONNECTION_TYPES, ids=lambda d: d["connection-type"])
def test_each_connection_type_has_its_field_table_and_form_screenshot(definition):
    conn_type = definition["connection-type"]
    service_pages = "".join(p.read_text() for p in (DOCS / "services").glob("*.md"))
    assert f"```{{connection-fields}} {conn_type}\n" in service_pages
    assert (DOCS / "_static" / "connection-forms" / f"{conn_type}.png").exists()


def test_every_operator_and_sensor_has_a_place_on_a_service_page():
    service_pages = "".join(p.read_text() for p in (DOCS / "services").glob("*.md"))
    info = get_provider_info()
    for group in ("operators", "sensors"):
        for entry in info[group]:
            for module_name in entry["python-modules"]:
                module = importlib.import_module(module_name)
                for name, cls in inspect.getmembers(module, inspect.isclass):
                    if cls.__module__ == module_name and name.endswith(("Operator", "Sensor")) and name[0] != "_":
                        assert f"{module_name}.{name}`" in service_pages, name
