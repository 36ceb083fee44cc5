"""Sphinx directives that build doc content from the provider's own declarations, so nothing is pasted.

``connection-fields``: the fields of one connection type, read from the one declaration Airflow's form
and the hooks use (``get_provider_info.CONNECTION_TYPES``): the standard fields the form keeps (with
their labels) and every ``conn-fields`` extra with its label, type, default, whether it is secret, and
its description.
"""

from __future__ import annotations

import json
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from airflow_provider_modelreg.get_provider_info import connection_type

STANDARD_FIELDS = ("host", "schema", "login", "password", "port")


def _cell(text: str) -> str:
    return " ".join(str(text).split()) or "\\-"


def _type_of(schema: dict[str, Any]) -> str:
    types = [t for t in schema.get("type", []) if t != "null"] if isinstance(schema.get("type"), list) else []
    if "enum" in schema:
        return "one of " + ", ".join(f"``{v}``" for v in schema["enum"] if v is not None)
    return "/".join(types) or "string"


def field_rows(conn_type: str) -> list[tuple[str, str, str, str, str]]:
    """(field, label, type, default, description) for each field the connection form shows."""
    definition = connection_type(conn_type)
    behaviour = definition["ui-field-behaviour"]
    hidden, relabel = set(behaviour.get("hidden-fields", [])), behaviour.get("relabeling", {})
    placeholders = behaviour.get("placeholders", {})
    rows = []
    for name in STANDARD_FIELDS:
        if name in hidden:
            continue
        label = relabel.get(name, name.capitalize())
        kind = "string (secret)" if name == "password" else "string"
        hint = f"e.g. ``{placeholders[name]}``" if name in placeholders else ""
        rows.append((f"``{name}``", label, kind, "", hint))
    for name, field in definition["conn-fields"].items():
        schema = field["schema"]
        kind = _type_of(schema) + (" (secret)" if schema.get("format") == "password" else "")
        default = f"``{json.dumps(schema['default'])}``" if "default" in schema else ""
        rows.append((f"``extra.{name}``", field["label"], kind, default, field.get("description", "")))
    return rows


class ConnectionFields(SphinxDirective):
    """``.. connection-fields:: <connection type>``: the type's fields as a table."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        conn_type = self.arguments[0]
        try:
            rows = field_rows(conn_type)
        except KeyError:
            raise self.error(f"no connection type {conn_type!r} in get_provider_info.CONNECTION_TYPES") from None
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 20 20 15 10 35",
            "",
            "   * - field",
            "     - label in the form",
            "     - type",
            "     - default",
            "     - meaning",
        ]
        for row in rows:
            lines.append(f"   * - {_cell(row[0])}")
            lines.extend(f"     - {_cell(cell)}" for cell in row[1:])
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"connection-fields {conn_type}"), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("connection-fields", ConnectionFields)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
