"""The sandbox's memory: resources per service, lifecycle timing, outcome rules and counters."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LIFECYCLE_SECONDS = 3.0


@dataclass
class OutcomeRule:
    """Make resources whose name contains ``match`` end in a failure state with ``reason``."""

    service: str
    match: str
    reason: str = "training failed in the sandbox (outcome rule)"


@dataclass
class SandboxState:
    lifecycle_seconds: dict[str, float] = field(default_factory=dict)
    happyrobot_api_keys: set[str] = field(default_factory=lambda: {"sandbox-happyrobot-key"})
    # Accepted NeMo Platform Bearer tokens; empty means auth off (the platform's default).
    nemo_tokens: set[str] = field(default_factory=set)
    # keyId -> PEM public key, for the OCI services' signature checks.
    oci_public_keys: dict[str, str] = field(default_factory=dict)
    outcome_rules: list[OutcomeRule] = field(default_factory=list)
    # service -> resource id -> resource record (dict); records keep their creation time in "_created".
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Anything a service wants to remember beyond its resources (retry tokens, experiments, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def seconds(self, service: str) -> float:
        return self.lifecycle_seconds.get(service, self.lifecycle_seconds.get("*", DEFAULT_LIFECYCLE_SECONDS))

    def bump(self, counter: str, by: int = 1) -> None:
        with self.lock:
            self.counters[counter] = self.counters.get(counter, 0) + by

    def failure_for(self, service: str, name: str | None) -> str | None:
        for rule in self.outcome_rules:
            if rule.service in (service, "*") and name and rule.match in name:
                return rule.reason
        return None

    def store(self, service: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            record.setdefault("_created", time.time())
            self.resources.setdefault(service, {})[key] = record
            self.bump(f"{service}.created")
            return record

    def all(self, service: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.resources.get(service, {}).values())

    def get(self, service: str, key: str) -> dict[str, Any] | None:
        with self.lock:
            return self.resources.get(service, {}).get(key)

    def new_hex_id(self, length: int = 24) -> str:
        return secrets.token_hex(length // 2 + 1)[:length]

    def reset(self) -> None:
        with self.lock:
            self.resources.clear()
            self.extra.clear()
            self.counters.clear()
            self.outcome_rules.clear()


def phase(record: dict[str, Any], seconds: float, steps: list[tuple[str, float]], final: str) -> str:
    """The state a resource is in now: ``steps`` are (state, share of ``seconds``) in order, then ``final``.

    Lifecycles advance with wall-clock time, computed on read, so no background task is needed.
    """
    elapsed = time.time() - record["_created"]
    bound = 0.0
    for state, share in steps:
        bound += share * seconds
        if elapsed < bound:
            return state
    return final


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the sandbox's private bookkeeping (keys starting with '_')."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


def request_id() -> str:
    return secrets.token_hex(16).upper()
