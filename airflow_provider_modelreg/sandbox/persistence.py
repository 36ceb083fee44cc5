"""The sandbox's state file: what it knows survives a restart, so a deployment can keep running under it.

The state is pickled (it holds counters, byte strings and tuple keys that JSON cannot carry) and written
atomically (a temporary file, then ``os.replace``) after every request that may change it, so a crash never
leaves half a file. The file is the sandbox's own, on the machine it runs on, like a local database file:
load only files this sandbox wrote.
"""

from __future__ import annotations

import io
import itertools
import os
import pickle
import re
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from airflow_provider_modelreg.sandbox.state import SandboxState

FORMAT_VERSION = 1
# Fields that belong to the running process, never to the file.
_TRANSIENT = {"lock"}
_COUNT = re.compile(r"count\((\d+)\)")


class _StatePickler(pickle.Pickler):
    """Pickles ``itertools.count`` by its next value (the stdlib stops pickling it in Python 3.14)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, itertools.count):
            match = _COUNT.fullmatch(repr(obj))
            if match:
                return itertools.count, (int(match[1]),)
        return NotImplemented


def dump_state(state: SandboxState) -> bytes:
    with state.lock:
        snapshot = {f.name: getattr(state, f.name) for f in fields(state) if f.name not in _TRANSIENT}
        buffer = io.BytesIO()
        _StatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump({"version": FORMAT_VERSION, "state": snapshot})
    return buffer.getvalue()


def save_state(state: SandboxState, path: str | Path) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = dump_state(state)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(path: str | Path, into: SandboxState) -> bool:
    """Fill ``into`` from the file at ``path``; False when there is no file yet (a first start)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return False
    document = pickle.loads(raw)  # the sandbox's own file (see the module docstring)
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a state file of this sandbox version")
    with into.lock:
        for name, value in document["state"].items():
            if name not in _TRANSIENT and hasattr(into, name):
                setattr(into, name, value)
    return True
