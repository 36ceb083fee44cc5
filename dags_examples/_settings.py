"""Settings the example DAGs share.

Real trainings take minutes to hours, so the examples check every 30 s; the sandbox demo
(`./dev demo`) and the tests set MODELREG_EXAMPLE_POLL_SECONDS to a second or two.
"""

from __future__ import annotations

import os

POLL_SECONDS = float(os.environ.get("MODELREG_EXAMPLE_POLL_SECONDS", "30"))
