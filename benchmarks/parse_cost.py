"""DAG parse cost: time and memory to import every operator and sensor module of the provider.

Each sample is a fresh ``python`` process that imports ``airflow.sdk`` (what every DAG file pays), then
measures wall time and resident-memory growth while importing:

* provider: every operator and sensor module that ``get_provider_info()`` lists;
* peer: ``oci.signer``, what an OCI provider built on the ``oci`` SDK pays for request signing;
* context: the same provider modules without a bytecode cache;
* context: the same provider modules after a DAG file's usual ``from airflow.sdk import DAG, BaseOperator,
  BaseSensorOperator, BaseHook`` (Airflow classes the provider's modules load lazily on first use).

All variants but the last read a bytecode cache (kept outside the work tree), as an installed package
does; the last compiles from source, as this work tree's shells (PYTHONDONTWRITEBYTECODE=1) do.
Samples of the variants are interleaved (so a burst of load from other work hits all alike) and the medians
are reported with min..max. Modules that fail to import on their own (e.g. being written right now) are
skipped and listed; rerun later. Target: the provider adds under 50 ms and under 10 MB.

    .venv/bin/python benchmarks/parse_cost.py [--quick] [--samples 11]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, bench_env, conditions, median, print_table, spread

TARGET_MS = 50.0
TARGET_MB = 10.0

# Runs in the fresh process: the modules to import come as argv[1] (JSON), the prelude as argv[2].
PROBE = r"""
import importlib, json, os, sys, time
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE
t = time.perf_counter(); r = rss()
import airflow.sdk
exec(sys.argv[2])
sdk_s, sdk_b = time.perf_counter() - t, rss() - r
modules = json.loads(sys.argv[1])
r0 = rss(); t0 = time.perf_counter(); n0 = len(sys.modules)
steps = []
for name in modules:
    ts = time.perf_counter()
    importlib.import_module(name)
    steps.append(time.perf_counter() - ts)
seconds, grown = time.perf_counter() - t0, rss() - r0
print(json.dumps({"s": seconds, "bytes": grown, "steps": steps, "new_modules": len(sys.modules) - n0,
                  "sdk_s": sdk_s, "sdk_bytes": sdk_b}))
"""

DAG_FILE_PRELUDE = "from airflow.sdk import DAG, BaseOperator, BaseSensorOperator, BaseHook"


def provider_modules() -> list[str]:
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    info = get_provider_info()
    names: list[str] = []
    for kind in ("operators", "sensors"):
        for entry in info.get(kind, []):
            names.extend(m for m in entry["python-modules"] if m not in names)
    return names


def probe(modules: list[str], prelude: str = "", *, bytecode_cache: bool = True) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), prelude],
        env=bench_env(bytecode_cache=bytecode_cache),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def importable(module: str) -> str | None:
    """None when ``module`` imports on its own in a fresh process, else the error's last line."""
    try:
        probe([module])
    except RuntimeError as exc:
        return str(exc)
    return None


def importtime_top(modules: list[str], count: int = 8) -> list[str]:
    """The provider-side imports with the most own time (``python -X importtime``), after airflow.sdk."""
    # `import` statements, not importlib.import_module: -X importtime only times the former at top level.
    code = "import airflow.sdk\n" + "".join(f"import {m}\n" for m in modules)
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=bench_env(), capture_output=True, text=True, check=False
    )
    lines = out.stderr.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.rstrip().endswith("| airflow.sdk")), -1) + 1
    rows = []
    for line in lines[start:]:
        parts = line.split("|")
        if len(parts) == 3 and parts[0].strip().startswith("import time:"):
            try:
                rows.append((int(parts[0].split(":")[1]), int(parts[1]), parts[2].rstrip()))
            except ValueError:
                continue
    rows.sort(reverse=True)
    return [
        f"{own / 1000:6.1f} ms own, {cum / 1000:6.1f} ms with children  {name.strip()}"
        for own, cum, name in rows[:count]
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 samples per variant")
    parser.add_argument("--samples", type=int, default=11, help="fresh processes per variant (median reported)")
    args = parser.parse_args()
    samples = 5 if args.quick else args.samples

    print(f"parse_cost: {conditions()}")
    listed = provider_modules()
    failed = {m: err for m in listed if (err := importable(m)) is not None}
    modules = [m for m in listed if m not in failed]
    print(f"{len(listed)} operator/sensor modules listed by get_provider_info(); {len(modules)} import:")
    for m in listed:
        print(f"  {'ok     ' if m in modules else 'SKIPPED'} {m}" + (f"  ({failed[m]})" if m in failed else ""))
    if failed:
        print("  -> skipped modules are not in the figures below: rerun when they import.")

    probe(modules)  # fills the bytecode cache (an installed package has its .pyc files)
    probe(["oci.signer"])
    runs: dict[str, list[dict[str, float]]] = {
        "provider": [],
        "peer": [],
        "dag_file": [],
        "cold": [],
    }
    for i in range(samples):
        if i % 2 == 0:  # fewer samples of the context variants; "cold" compiles all of Airflow too (~3 s)
            runs["cold"].append(probe(modules, bytecode_cache=False))
        runs["provider"].append(probe(modules))
        runs["peer"].append(probe(["oci.signer"]))
        runs["dag_file"].append(probe(modules, DAG_FILE_PRELUDE))
        print(
            f"  sample {i + 1:2d}/{samples}: provider {runs['provider'][-1]['s'] * 1000:6.1f} ms "
            f"{runs['provider'][-1]['bytes'] / 2**20:5.1f} MB | oci.signer {runs['peer'][-1]['s'] * 1000:6.1f} ms "
            f"{runs['peer'][-1]['bytes'] / 2**20:5.1f} MB | provider after DAG-file imports "
            f"{runs['dag_file'][-1]['s'] * 1000:6.1f} ms",
            flush=True,
        )

    def ms(kind: str) -> list[float]:
        return [r["s"] * 1000 for r in runs[kind]]

    def mb(kind: str) -> list[float]:
        return [r["bytes"] / 2**20 for r in runs[kind]]

    p_ms, p_mb = median(ms("provider")), median(mb("provider"))
    o_ms, o_mb = median(ms("peer")), median(mb("peer"))
    d_ms, d_mb = median(ms("dag_file")), median(mb("dag_file"))
    c_ms = median(ms("cold"))
    sdk_ms = median([r["sdk_s"] * 1000 for r in runs["provider"]])
    sdk_mb = median([r["sdk_bytes"] / 2**20 for r in runs["provider"]])
    scope = f"{len(modules)}/{len(listed)} modules"
    rows = [
        Row(
            f"import time over `import airflow.sdk` ({scope})",
            f"{p_ms:.1f} ms ({spread(ms('provider'))})",
            f"oci.signer {o_ms:.1f} ms ({spread(ms('peer'))})",
            f"< {TARGET_MS:.0f} ms",
            p_ms < TARGET_MS,
        ),
        Row(
            f"RSS growth over `import airflow.sdk` ({scope})",
            f"{p_mb:.1f} MB ({spread(mb('provider'))})",
            f"oci.signer {o_mb:.1f} MB ({spread(mb('peer'))})",
            f"< {TARGET_MB:.0f} MB",
            p_mb < TARGET_MB,
        ),
        Row(
            "same, after a DAG file's own `from airflow.sdk import DAG, BaseOperator, ...`",
            f"{d_ms:.1f} ms, {d_mb:.1f} MB",
            "-",
            "-",
            None,
        ),
        Row(
            "same, without a bytecode cache (PYTHONDONTWRITEBYTECODE=1 work tree)",
            f"{c_ms:.1f} ms ({spread(ms('cold'))})",
            "-",
            "-",
            None,
        ),
        Row(
            "modules added to sys.modules",
            f"{median([r['new_modules'] for r in runs['provider']]):.0f}",
            f"oci.signer {median([r['new_modules'] for r in runs['peer']]):.0f}",
            "-",
            None,
        ),
        Row("bare `import airflow.sdk` itself (reference)", f"{sdk_ms:.0f} ms, {sdk_mb:.0f} MB", "-", "-", None),
    ]
    print("\nper module, in import order (median ms; each includes what it is the first to import):")
    for index, name in enumerate(modules):
        print(f"  {median([r['steps'][index] * 1000 for r in runs['provider']]):6.1f} ms  {name}")
    print("\nlargest own import times after airflow.sdk (python -X importtime, one run):")
    for line in importtime_top(modules):
        print(f"  {line}")
    print_table("Parse-time import cost (medians of fresh processes)", rows)
    if failed:
        print(f"NOTE: {len(failed)} listed module(s) skipped because they do not import yet: {', '.join(failed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
