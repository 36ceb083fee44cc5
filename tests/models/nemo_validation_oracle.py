"""NVIDIA's own verdicts on what the provider sends to the Models API: run from ``.venv-nemo-server`` (the real
server's environment) by tests/models/test_nemo_validation_oracle.py. Reads one JSON object a line on stdin,
``{"check": ..., "value": ...}``, and writes one line each: ``{"refused": [the fields NVIDIA refuses]}``.

Checks (each NVIDIA's own classes and functions; nothing here decides a verdict itself):

* ``create``: a model-entity create body, by ``CreateModelEntityRequest``;
* ``workspace_name``, ``model_name``: a name a workspace or a model entity can have (``WorkspaceInput``,
  ``CreateModelEntityRequest``: the classes that make them), so the only names a path can address (the routes
  take any string and answer 404 for the rest);
* ``fileset_reference``: a model's ``fileset`` as the create route reads it (``parse_entity_ref``), whose parts
  must be a workspace's and a fileset's name (``WorkspaceInput``, ``CreateFilesetRequest``) for the lookup to
  find anything.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from nemo_platform_plugin.files.types import CreateFilesetRequest
from nemo_platform_plugin.refs import parse_entity_ref
from nmp.core.entities.api.v2.workspaces.schemas import WorkspaceInput
from nmp.core.models.schemas import CreateModelEntityRequest
from pydantic import BaseModel, ValidationError


def refused(model: type[BaseModel], body: Any, only: str | None = None) -> list[str]:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        fields = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        return sorted(fields if only is None else fields & {only})
    return []


def fileset_reference(value: str) -> list[str]:
    try:
        ref = parse_entity_ref(value, default_workspace="default")
    except ValueError:
        return ["fileset"]
    if refused(WorkspaceInput, {"name": ref.workspace}) or refused(CreateFilesetRequest, {"name": ref.name}, "name"):
        return ["fileset"]
    return []


CHECKS = {
    "create": lambda body: refused(CreateModelEntityRequest, body),
    "workspace_name": lambda name: ["workspace"] if refused(WorkspaceInput, {"name": name}) else [],
    "model_name": lambda name: refused(CreateModelEntityRequest, {"name": name}, "name"),
    "fileset_reference": fileset_reference,
}


def main() -> None:
    for line in sys.stdin:
        asked = json.loads(line)
        print(json.dumps({"refused": CHECKS[asked["check"]](asked["value"])}), flush=True)


if __name__ == "__main__":
    main()
