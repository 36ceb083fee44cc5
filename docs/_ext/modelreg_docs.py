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
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from airflow_provider_modelreg.get_provider_info import connection_type

STANDARD_FIELDS = ("host", "schema", "login", "password", "port")

# A cell is a list of fragments: ("code", text) shows as literal text, ("text", text) as plain text. Cells are
# built as docutils nodes, never parsed as markup: a description's "<region>" stays text.
Cell = list[tuple[str, str]]


def _type_of(schema: dict[str, Any]) -> Cell:
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None]
        cell: Cell = [("text", "one of ")]
        for n, value in enumerate(values):
            cell += [("text", ", ")] if n else []
            cell.append(("code", str(value)))
        return cell
    types = [t for t in schema.get("type", []) if t != "null"] if isinstance(schema.get("type"), list) else []
    return [("text", "/".join(types) or "string")]


def field_rows(conn_type: str) -> list[list[Cell]]:
    """(field, label, type, default, meaning) for each field the connection form shows."""
    definition = connection_type(conn_type)
    behaviour = definition["ui-field-behaviour"]
    hidden, relabel = set(behaviour.get("hidden-fields", [])), behaviour.get("relabeling", {})
    placeholders = behaviour.get("placeholders", {})
    rows: list[list[Cell]] = []
    for name in STANDARD_FIELDS:
        if name in hidden:
            continue
        kind = "string (secret)" if name == "password" else "string"
        hint: Cell = [("text", "e.g. "), ("code", placeholders[name])] if name in placeholders else []
        rows.append([[("code", name)], [("text", relabel.get(name, name.capitalize()))], [("text", kind)], [], hint])
    for name, field in definition["conn-fields"].items():
        schema = field["schema"]
        kind = _type_of(schema) + ([("text", " (secret)")] if schema.get("format") == "password" else [])
        default: Cell = [("code", json.dumps(schema["default"]))] if "default" in schema else []
        meaning: Cell = [("text", " ".join(field.get("description", "").split()))]
        rows.append([[("code", f"extra.{name}")], [("text", field["label"])], kind, default, meaning])
    return rows


def _entry(cell: Cell) -> nodes.entry:
    paragraph = nodes.paragraph()
    for kind, text in cell:
        paragraph += nodes.literal(text, text) if kind == "code" else nodes.Text(text)
    return nodes.entry("", paragraph)


class ConnectionFields(SphinxDirective):
    """``connection-fields`` with a connection type as argument: the type's fields as a table."""

    required_arguments = 1
    HEADER = ("field", "label in the form", "type", "default", "meaning")
    WIDTHS = (24, 14, 14, 10, 38)

    def run(self) -> list[nodes.Node]:
        conn_type = self.arguments[0]
        try:
            rows = field_rows(conn_type)
        except KeyError:
            raise self.error(f"no connection type {conn_type!r} in get_provider_info.CONNECTION_TYPES") from None
        group = nodes.tgroup(cols=len(self.HEADER))
        group += [nodes.colspec(colwidth=width) for width in self.WIDTHS]
        group += nodes.thead("", nodes.row("", *[_entry([("text", title)]) for title in self.HEADER]))
        group += nodes.tbody("", *[nodes.row("", *[_entry(cell) for cell in row]) for row in rows])
        return [nodes.table("", group, classes=["connection-fields", "colwidths-given"])]


def public_bases(app: Sphinx, name: str, obj: Any, options: Any, bases: list[type]) -> None:
    """Show a private base class (``_AliasOperator``) as the public classes it stands on."""
    resolved: list[type] = []
    for base in bases:
        while base.__name__.startswith("_") and base.__bases__:
            base = base.__bases__[0]
        resolved.append(base)
    bases[:] = resolved


def short_name(app: Sphinx, env: Any, node: Any, contnode: nodes.Node) -> nodes.Node | None:
    """A docstring's bare ``:class:`LifecycleTrigger``` resolves when exactly one documented object of the
    package has that name; anything else stays unresolved, and nitpicky mode fails the build on it."""
    if node.get("refdomain") != "py" or "." in node["reftarget"]:
        return None
    domain = env.get_domain("py")
    matches = [
        full
        for full in domain.objects
        if full.startswith("airflow_provider_modelreg.") and full.rsplit(".", 1)[-1] == node["reftarget"]
    ]
    if len(matches) != 1:
        return None
    entry = domain.objects[matches[0]]
    from sphinx.util.nodes import make_refnode

    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, matches[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("connection-fields", ConnectionFields)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("missing-reference", short_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
