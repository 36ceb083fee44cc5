"""Runs NVIDIA's model-spec task for the jobs a real NeMo Platform server creates, where no Docker is.

The models service submits one job per spec analysis (source ``models-system``, one step
``model-spec-analysis``, a CPU container ``/opt/venv/bin/python -m nmp.core.models.tasks.model_spec``). Its
jobs controller would run that container through Docker; the server's ``subprocess`` backend would run the
container's entrypoint path literally (it swaps only a bare ``python`` for a venv's), a path that does not
exist on a test machine, and with the server's own Python 3.12 environment, which has no CPU torch. So the
server runs without its jobs controller (its ``cpu/gpu`` profile mapped to the ``e2e`` backend only so that
the jobs API accepts the job) and this runner plays the controller's part for that one step, through the
jobs API's own routes:

- it watches ``GET /apis/jobs/v2/workspaces/{ws}/jobs?filter[source]=models-system&filter[status]=created``
  in every workspace;
- moves the step ``pending`` then ``active`` (``PATCH .../jobs/{job}/steps/model-spec-analysis/status``), runs
  ``python -m nmp.core.models.tasks.model_spec`` from the task environment with the step's config, as the
  Docker backend would (the job's environment variables, a config file, a scratch folder);
- ends the step ``completed``, or ``error`` with the Docker backend's words ("Job exited with non-zero code N,
  check logs for details.");
- a job seen ``cancelling`` has its task killed and its step ended ``cancelled``.

``python nemo_spec_runner.py BASE_URL TASK_PYTHON WORK_DIR`` runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

STEP = "model-spec-analysis"
SOURCE = "models-system"
POLL_SECONDS = 0.3
TASK_TIMEOUT_SECONDS = 600


class Runner:
    def __init__(self, base_url: str, task_python: str, work_dir: Path) -> None:
        self.base_url = base_url.rstrip("/")
        self.task_python = task_python
        self.work_dir = work_dir
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        self.running: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- the jobs API -------------------------------------------------------------------------------
    def workspaces(self) -> list[str]:
        names: list[str] = []
        page = 1
        while True:
            answer = self.http.get("/apis/entities/v2/workspaces", params={"page": page, "page_size": 100})
            answer.raise_for_status()
            body = answer.json()
            names += [w["name"] for w in body.get("data", [])]
            if page >= int((body.get("pagination") or {}).get("total_pages") or 1):
                return names
            page += 1

    def jobs(self, workspace: str, status: str) -> list[dict[str, Any]]:
        answer = self.http.get(
            f"/apis/jobs/v2/workspaces/{workspace}/jobs",
            params={"filter[source]": SOURCE, "filter[status]": status, "page_size": 100},
        )
        if answer.status_code == 404:
            return []
        answer.raise_for_status()
        return list(answer.json().get("data", []))

    def set_step(self, workspace: str, job: str, status: str, message: str | None = None) -> None:
        body: dict[str, Any] = {"status": status}
        if message is not None:
            body["status_details"] = {"message": message}
            body["error_details"] = {"message": message}
        answer = self.http.patch(f"/apis/jobs/v2/workspaces/{workspace}/jobs/{job}/steps/{STEP}/status", json=body)
        if answer.status_code not in (200, 409):  # 409: the job moved on meanwhile (e.g. cancelled)
            answer.raise_for_status()

    # -- one job ------------------------------------------------------------------------------------
    def start(self, job: dict[str, Any]) -> None:
        workspace, name = job["workspace"], job["name"]
        steps = [s for s in job.get("platform_spec", {}).get("steps", []) if s.get("name") == STEP]
        if not steps:
            return
        step = steps[0]
        self.set_step(workspace, name, "pending")
        folder = self.work_dir / f"{workspace}-{name}"
        (folder / "scratch").mkdir(parents=True, exist_ok=True)
        config = folder / "config.json"
        config.write_text(json.dumps(step.get("config") or {}))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            **{e["name"]: str(e.get("value", "")) for e in step.get("environment") or [] if "name" in e},
            # As the Docker backend sets them: where the step's config and scratch space are, which job it is.
            "NEMO_JOB_STEP_CONFIG_FILE_PATH": str(config),
            "NEMO_JOB_EPHEMERAL_TASK_STORAGE_PATH": str(folder / "scratch"),
            "NEMO_JOB_WORKSPACE": workspace,
            "NEMO_JOB_ID": job.get("id", name),
            "NEMO_JOB_ATTEMPT_ID": job.get("attempt_id", ""),
            "NEMO_JOB_STEP": STEP,
            "NMP_BASE_URL": self.base_url,
            "NMP_MODELS_URL": self.base_url,
            "NMP_FILES_URL": self.base_url,
            "NMP_JOBS_URL": self.base_url,
            "NMP_CONFIG_WARNINGS_DISABLED": "1",
            "NEMO_TELEMETRY_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        log = (folder / "task.log").open("wb")
        process = subprocess.Popen(
            [self.task_python, "-m", "nmp.core.models.tasks.model_spec"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        with self.lock:
            self.running[(workspace, name)] = process
        self.set_step(workspace, name, "active")
        threading.Thread(target=self.finish, args=(workspace, name, process, log), daemon=True).start()

    def finish(self, workspace: str, name: str, process: subprocess.Popen[bytes], log: Any) -> None:
        try:
            code = process.wait(timeout=TASK_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        finally:
            log.close()
        with self.lock:
            cancelled = self.running.pop((workspace, name), None) is None
        if cancelled or self.stopping.is_set():
            return
        if code == 0:
            self.set_step(workspace, name, "completed")
        else:
            self.set_step(workspace, name, "error", f"Job exited with non-zero code {code}, check logs for details.")

    def cancel(self, job: dict[str, Any]) -> None:
        workspace, name = job["workspace"], job["name"]
        with self.lock:
            process = self.running.pop((workspace, name), None)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        self.set_step(workspace, name, "cancelled")

    # -- the loop -----------------------------------------------------------------------------------
    def loop(self) -> None:
        while not self.stopping.is_set():
            try:
                for workspace in self.workspaces():
                    for job in self.jobs(workspace, "created"):
                        self.start(job)
                    for job in self.jobs(workspace, "cancelling"):
                        self.cancel(job)
            except httpx.HTTPError as exc:  # the server restarting or busy: try again on the next round
                print(f"runner: {exc!r}", file=sys.stderr, flush=True)
            self.stopping.wait(POLL_SECONDS)

    def stop(self, *_: Any) -> None:
        self.stopping.set()
        with self.lock:
            for process in self.running.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    runner = Runner(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    runner.loop()


if __name__ == "__main__":
    main()
