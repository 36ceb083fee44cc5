"""``[core] hostname_callable`` for the production-shaped test: names each triggerer after its component, so
the test can tell from the ``job`` table which triggerer holds which triggers (they share one machine)."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("MODELREG_COMPONENT") or socket.getfqdn()
