"""NVIDIA's own verdict on a model-entity create body: run from ``.venv-nemo-server`` (the real server's
environment) by tests/models/test_nemo_validation_oracle.py. Reads one JSON body a line on stdin, writes one line
a body: ``{"refused": [top-level fields NVIDIA's CreateModelEntityRequest refuses]}``."""

from __future__ import annotations

import json
import sys

from nmp.core.models.schemas import CreateModelEntityRequest
from pydantic import ValidationError


def main() -> None:
    for line in sys.stdin:
        try:
            CreateModelEntityRequest.model_validate(json.loads(line))
            refused: list[str] = []
        except ValidationError as exc:
            refused = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        print(json.dumps({"refused": refused}), flush=True)


if __name__ == "__main__":
    main()
