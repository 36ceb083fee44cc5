"""How often a wait polls: its configured interval, unless a test runs it against the sandbox.

Every wait of the provider picks its poll interval here (an operator's sync wait and its deferred trigger,
a sensor's pokes, sync or deferred): :func:`poll_interval` returns the configured interval unchanged,
except when :data:`PACE_ENV` is set, which only the pytest plugin's ``modelreg_sandbox`` fixture does,
for the duration of a test. Then a wait polls at most every ``PACE_ENV`` seconds, the sandbox's pace
(its lifecycles take about a second), so a team's production DAG (30 s poll intervals) runs in seconds
under test, unchanged. Read on every call, so a test that unsets it sees the configured interval again.

The bottom floor: imports nothing of the provider, nothing of Airflow.
"""

from __future__ import annotations

import os

# Seconds between two polls of any wait while set (a positive number); unset in production.
PACE_ENV = "MODELREG_SANDBOX_PACE_SECONDS"


def pace() -> float | None:
    """The sandbox's pace in seconds when a test set one, else None (a value that is not a positive
    number counts as unset: pacing can only shorten a wait, never break one)."""
    raw = os.environ.get(PACE_ENV)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def poll_interval(configured: float) -> float:
    """The interval a wait configured with ``configured`` seconds polls at: the same, or the test's pace
    when that is shorter."""
    paced = pace()
    return configured if paced is None else min(float(configured), paced)
