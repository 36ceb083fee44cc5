"""Check docs/airflow-versions.md's support table against what the tests showed on each Airflow line.

``python scripts/airflow_support_table.py --check <folder>`` reads ``<folder>/airflow-<line>.json`` (written by
tests/fixtures/airflow_features.py in each line's pytest run of ``./dev test``) and fails, naming the cell, when
a cell that says ✓ or *degraded* has no passing test on its line, when a test backing it failed there, or when
the ``whole suite`` row claims a line whose whole-suite run was not clean. Without ``--check`` it prints, per
line, which rows' tests passed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[1] / "docs" / "airflow-versions.md"
START, END = "<!-- support-table -->", "<!-- /support-table -->"
REQUIRED = ("✓", "*degraded*")


def table(doc: Path = DOC) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """The table's Airflow lines and, per row, its feature (the first backticked name) and cell per line."""
    text = doc.read_text()
    rows = [line for line in text[text.index(START) : text.index(END)].splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    lines = [h for h in header if re.fullmatch(r"\d+\.\d+", h)]
    parsed = []
    for row in rows[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        feature = re.search(r"`([^`]+)`", cells[0])
        if feature is None:
            raise SystemExit(f"{doc.name}: a row names no feature: {row}")
        parsed.append((feature.group(1), {line: cells[header.index(line)] for line in lines}))
    return lines, parsed


def problems(folder: Path, doc: Path = DOC) -> list[str]:
    lines, rows = table(doc)
    found: list[str] = []
    for line in lines:
        path = folder / f"airflow-{line}.json"
        report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for feature, cells in rows:
            cell = cells[line]
            if not cell.startswith(REQUIRED):
                continue
            where = f"{feature!r} on Airflow {line} ({cell})"
            if not report:
                found.append(f"{where}: no results from Airflow {line} in {path}")
                continue
            if feature == "whole suite":
                whole = [r for r in report.get("runs", []) if not r["selection"] and r["passed"]]
                if not whole:
                    found.append(f"{where}: the whole suite did not run on this line")
                elif any(r["failed"] for r in whole):
                    found.append(f"{where}: the whole suite had failures on this line")
                continue
            tests = report.get("features", {}).get(feature, {})
            if not any(outcome == "passed" for outcome in tests.values()):
                found.append(f"{where}: no test backing it passed")
            found += [f"{where}: {test} {outcome}" for test, outcome in tests.items() if outcome == "failed"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the lines' airflow-<line>.json files are")
    parser.add_argument("--check", action="store_true", help="fail when a cell is not backed by its line's results")
    args = parser.parse_args()
    if args.check:
        found = problems(args.folder)
        for problem in found:
            print(f"support table: {problem}", file=sys.stderr)
        if not found:
            print(f"support table: every ✓ and degraded cell of {DOC.name} is backed by a passing test on its line")
        return 1 if found else 0
    for path in sorted(args.folder.glob("airflow-*.json")):
        report = json.loads(path.read_text())
        passed = sorted(f for f, tests in report["features"].items() if all(o == "passed" for o in tests.values()))
        print(f"Airflow {report['airflow']}: {', '.join(passed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
