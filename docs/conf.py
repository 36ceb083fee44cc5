"""Sphinx configuration of the provider's docs (``./dev docs``).

Sphinx because Airflow's own provider docs are Sphinx: autodoc from docstrings and code pulled from example
DAGs by start/end markers, so these pages read like theirs. Pages are MyST Markdown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# autodoc imports the operators, which import Airflow: keep its home (airflow.cfg, logs) inside the build.
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow-home"))

project = "airflow-provider-modelreg"
author = "airflow-provider-modelreg contributors"
copyright = "2026, " + author
release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "modelreg_docs",  # docs/_ext/modelreg_docs.py: connection field tables from get_provider_info.py
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # [text](page.md#a-heading) is checked like any other reference

html_theme = "furo"
html_title = "airflow-provider-modelreg"
html_static_path = ["_static"]
html_css_files = ["modelreg.css"]
html_show_sourcelink = False

autodoc_default_options = {"members": True, "show-inheritance": True, "undoc-members": False}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # types named in the docstrings; hints would name every internal alias

# Nitpicky (-n) checks every reference. This project's own names must all resolve; names of other
# packages (Airflow, httpx, pydantic, the standard library) cannot without intersphinx, which would need
# the network, so only those are let through.
nitpick_ignore_regex = [
    (r"py:.*", r"(airflow|httpx|pydantic|pydantic_core|pendulum|cryptography|starlette|fastapi|pytest|_pytest)\..*"),
    (r"py:.*", r"(collections\.abc|typing|typing_extensions|asyncio|datetime|pathlib|enum|dataclasses|types)\..*"),
    (r"py:.*", r"(Any|Context|NoneType|Callable|Mapping|Iterator|Sequence|Awaitable|AsyncIterator|Literal|Self)"),
    (r"py:class", r"(BaseOperator|BaseSensorOperator|BaseTrigger|BaseEventTrigger|BaseHook|TriggerEvent)"),
]
