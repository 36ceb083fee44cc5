"""Regenerate the README's operator and sensor parameter tables from the classes' docstrings.

``python scripts/readme_params.py`` prints the tables; ``--write`` replaces the block between the
``<!-- PARAMS -->`` markers in README.md.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_provider_modelreg.get_provider_info import get_provider_info  # noqa: E402

PARAM = re.compile(r":param (\w+):\s*(.*?)(?=\n\s*:param |\Z)", re.S)
COMMON = {"conn_id", "wait_for_completion", "deferrable", "poll_interval", "wait_timeout"}


def classes(group: str) -> list[type]:
    found = []
    for entry in get_provider_info()[group]:
        for module_name in entry["python-modules"]:
            module = importlib.import_module(module_name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if (
                    cls.__module__ == module_name
                    and cls.__name__.endswith(("Operator", "Sensor"))
                    and cls.__name__[0] != "_"
                ):
                    found.append(cls)
    return found


def table(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ")
    rows = [f"| `{name}` | {' '.join(text.split())} |" for name, text in PARAM.findall(doc) if name not in COMMON]
    module = cls.__module__
    head = f"#### `{cls.__name__}` (`{module}`)\n\n{summary}\n"
    return head + ("\n| parameter | meaning |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else "")


def render() -> str:
    parts = [table(cls) for group in ("operators", "sensors") for cls in classes(group)]
    return "\n".join(parts)


def main() -> None:
    text = render()
    if "--write" in sys.argv:
        readme = ROOT / "README.md"
        content = readme.read_text()
        start, end = "<!-- PARAMS -->", "<!-- /PARAMS -->"
        if end not in content:
            content = content.replace(start, f"{start}\n{end}")
        before, rest = content.split(start, 1)
        _, after = rest.split(end, 1)
        readme.write_text(f"{before}{start}\n{text}\n{end}{after}")
    else:
        print(text)


if __name__ == "__main__":
    main()
