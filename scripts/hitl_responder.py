"""Answers Airflow's human-in-the-loop requests through Airflow's own REST API (the HITL endpoints the
Required Actions UI calls), so ``./dev demo`` and the tests run the approval example without a person.

``dag.test()`` leaves a HITL task waiting until a response is recorded "from outside": on Airflow 3.3 by
the HITL REST API of an api-server sharing the metadata DB, on 3.2 the same API while the task's
``HITLTrigger`` polls for it. This module serves that API in-process (Airflow's FastAPI app, with the
simple auth manager's all-admins mode for this process only) and, from a thread, answers every pending
request of the given DAGs with the chosen option.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any


class HitlResponder:
    """Polls ``GET /api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false`` and answers each pending
    request with ``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails`` (``chosen_options``)."""

    def __init__(self, answer: str = "Approve", dag_ids: Iterable[str] | None = None, interval: float = 0.5) -> None:
        self.answer = answer
        self.dag_ids = None if dag_ids is None else set(dag_ids)
        self.interval = interval
        self.answered: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None

    def __enter__(self) -> HitlResponder:
        os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        from airflow.api_fastapi.app import create_app
        from fastapi.testclient import TestClient

        self._client = TestClient(create_app("core"))
        self._thread = threading.Thread(target=self._loop, name="hitl-responder", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._client is not None:
            self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.answer_pending()
            except Exception as exc:  # keep answering; the test or the demo reports what went wrong
                self.errors.append(repr(exc))

    def answer_pending(self) -> None:
        response = self._client.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": False})
        response.raise_for_status()
        for detail in response.json().get("hitl_details", []):
            ti = detail.get("task_instance") or {}
            if detail.get("response_received") or (self.dag_ids is not None and ti.get("dag_id") not in self.dag_ids):
                continue
            path = (
                f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                f"{ti['task_id']}/{ti.get('map_index', -1)}/hitlDetails"
            )
            answered = self._client.patch(path, json={"chosen_options": [self.answer], "params_input": {}})
            if answered.status_code == 409:  # answered meanwhile
                continue
            answered.raise_for_status()
            self.answered.append({"dag_id": ti["dag_id"], "task_id": ti["task_id"], "subject": detail.get("subject")})
