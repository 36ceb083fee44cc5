"""One NVIDIA-SDK session (``nemo_platform``, run from ``.venv-nemo``) against a NeMo Platform: NVIDIA's real
server or the sandbox. tests/sandbox/test_nemo_differential.py runs it against both and compares the answers
call by call.

``python differential.py BASE_URL WORKSPACE CHECKPOINT_DIR OUT.json`` writes one entry per call: its label, and
every HTTP answer the call got (method, path, status, JSON body). Waits (for a spec, for a job to end) poll
without recording and record only the answer that ended the wait, so a slower server records the same session.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nemo_platform
from nemo_platform import NeMoPlatform
from nemo_platform.resources.files.filesets import FilesetsResource
from session import create_sdk_bot  # this script's folder is on sys.path (run as a script)

WAIT_SECONDS = 240.0


class Recorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.quiet = False

    def on_response(self, response: httpx.Response) -> None:
        response.read()
        body: Any = None
        if response.content and "json" in response.headers.get("content-type", ""):
            body = response.json()
        if not self.quiet:
            self.answers.append(
                {
                    "method": response.request.method,
                    "path": response.request.url.path,
                    "query": sorted(response.request.url.params.multi_items()),
                    "status": response.status_code,
                    "body": body,
                }
            )

    def call(self, label: str, call: Any) -> Any:
        """Run ``call``; record every answer it got and what the SDK raised, if anything."""
        self.answers = []
        entry: dict[str, Any] = {"call": label}
        result = None
        try:
            result = call()
        except nemo_platform.APIStatusError as exc:
            entry["raised"] = type(exc).__name__
        entry["answers"] = self.answers
        self.entries.append(entry)
        return result

    def settle(self, label: str, read: Any, done: Any) -> Any:
        """Poll ``read()`` quietly until ``done(result)``; record the read that ended the wait."""
        deadline = time.monotonic() + WAIT_SECONDS
        self.quiet = True
        try:
            while True:
                result = read()
                if done(result) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
        finally:
            self.quiet = False
        return self.call(label, read)


def main(base_url: str, ws: str, checkpoint: Path, out: Path) -> None:
    rec = Recorder()
    http = nemo_platform.DefaultHttpxClient(event_hooks={"response": [rec.on_response]})
    client = NeMoPlatform(base_url=base_url, workspace=ws, max_retries=0, http_client=http)
    raw = httpx.Client(base_url=base_url, timeout=60, event_hooks={"response": [rec.on_response]})
    filesets = FilesetsResource(client)

    # -- workspaces and projects must exist first ---------------------------------------------------
    rec.call("list models, workspace missing", lambda: client.models.list(workspace=ws, page_size=1))
    rec.call("create model, workspace missing", lambda: client.models.create(workspace=ws, name="early"))
    rec.call("fileset create, workspace missing", lambda: filesets.create(name="early", purpose="model"))
    rec.call("workspace create", lambda: raw.post("/apis/entities/v2/workspaces", json={"name": ws}))
    rec.call("workspace create again", lambda: raw.post("/apis/entities/v2/workspaces", json={"name": ws}))
    rec.call("workspace get", lambda: raw.get(f"/apis/entities/v2/workspaces/{ws}"))
    rec.call("workspace get missing", lambda: raw.get(f"/apis/entities/v2/workspaces/{ws}-gone"))
    rec.call(
        "project create, workspace missing",
        lambda: raw.post(f"/apis/entities/v2/workspaces/{ws}-gone/projects", json={"name": "p1"}),
    )
    rec.call("list models, empty", lambda: client.models.list(workspace=ws))
    rec.call(
        "create model, project missing", lambda: client.models.create(workspace=ws, name="ghostly", project="ghost")
    )
    rec.call(
        "project create", lambda: raw.post(f"/apis/entities/v2/workspaces/{ws}/projects", json={"name": "support"})
    )
    rec.call(
        "project create again",
        lambda: raw.post(f"/apis/entities/v2/workspaces/{ws}/projects", json={"name": "support"}),
    )

    # -- filesets and their files -------------------------------------------------------------------
    for name in ("ckpt", "ckpt-v2", "empty"):
        rec.call(f"fileset create {name}", lambda n=name: filesets.create(name=n, purpose="model"))
    rec.call("fileset create again", lambda: filesets.create(name="ckpt", purpose="model"))
    # ckpt-v2 holds the same weights under a config of one more layer: NVIDIA's task reads the config (it skips
    # the weights), so the two filesets' specs differ and a wait can tell the new spec from the old.
    deeper = json.loads((checkpoint / "config.json").read_text())
    deeper["num_hidden_layers"] += 1
    for name in ("ckpt", "ckpt-v2"):
        for path in sorted(checkpoint.iterdir()):
            content = path.read_bytes()
            if name == "ckpt-v2" and path.name == "config.json":
                content = json.dumps(deeper).encode()
            rec.call(
                f"upload {name} {path.name}",
                lambda n=name, p=path, c=content: raw.put(
                    f"/apis/files/v2/workspaces/{ws}/filesets/{n}/-/{p.name}", content=c
                ),
            )
    rec.call("list files", lambda: raw.get(f"/apis/files/v2/workspaces/{ws}/filesets/ckpt/files"))
    rec.call("list files, empty fileset", lambda: raw.get(f"/apis/files/v2/workspaces/{ws}/filesets/empty/files"))
    rec.call("fileset retrieve", lambda: filesets.retrieve("ckpt", workspace=ws))
    rec.call("fileset retrieve missing", lambda: filesets.retrieve("nowhere", workspace=ws))

    # -- a model and the spec NVIDIA's task derives from its checkpoint -----------------------------
    rec.call(
        "create",
        lambda: create_sdk_bot(client, ws),
    )
    rec.call("retrieve", lambda: client.models.retrieve("sdk-bot", workspace=ws))
    rec.settle(
        "retrieve with spec",
        lambda: client.models.retrieve("sdk-bot", workspace=ws),
        lambda e: e is not None and e.spec is not None,
    )
    rec.call(
        "create, fileset with no checkpoint", lambda: client.models.create(workspace=ws, name="hollow", fileset="empty")
    )

    def spec_jobs() -> Any:
        return client.jobs.list(workspace=ws, filter={"source": "models-system"}, sort="created_at", page_size=50)

    def ended(page: Any) -> bool:
        return page is not None and all(j.status in ("completed", "error", "cancelled") for j in page.data)

    rec.settle("jobs, once ended", spec_jobs, ended)
    rec.call("retrieve, no checkpoint", lambda: client.models.retrieve("hollow", workspace=ws))

    # -- a PATCH to a new fileset: the old spec while the new job runs, then the new one ------------
    rec.call(
        "update fileset", lambda: client.models.update("sdk-bot", workspace=ws, description="v2", fileset="ckpt-v2")
    )
    rec.call("retrieve while the new job runs", lambda: client.models.retrieve("sdk-bot", workspace=ws))
    rec.settle("jobs, once the new job ended", spec_jobs, ended)
    rec.call("retrieve after the new job", lambda: client.models.retrieve("sdk-bot", workspace=ws))

    # -- jobs: filters, cancel of a running and of an ended job -------------------------------------
    rec.call("create, to cancel", lambda: client.models.create(workspace=ws, name="to-cancel", fileset="ckpt"))
    cancel_label = "Model Spec Analyzer for model " + ws + "/to-cancel"

    def job_to_cancel() -> Any:
        page = client.jobs.list(workspace=ws, filter={"status": "active"}, page_size=50)
        return next((j for j in page.data if j.description == cancel_label), None)

    rec.settle("the job to cancel, active", job_to_cancel, lambda j: j is not None)
    running = job_to_cancel()
    if running is not None:
        rec.call("cancel running job", lambda: client.jobs.cancel(running.name, workspace=ws))
        rec.settle(
            "cancelled job",
            lambda: client.jobs.retrieve(running.name, workspace=ws),
            lambda j: j.status == "cancelled",
        )
        rec.call("cancel ended job", lambda: client.jobs.cancel(running.name, workspace=ws))
    rec.call("cancel missing job", lambda: client.jobs.cancel("no-such-job", workspace=ws))
    rec.call("retrieve, cancelled analysis", lambda: client.models.retrieve("to-cancel", workspace=ws))
    rec.call("jobs filter status error", lambda: client.jobs.list(workspace=ws, filter={"status": "error"}))
    rec.call("jobs filter source other", lambda: client.jobs.list(workspace=ws, filter={"source": "other"}))
    rec.call("jobs page_size 1 page 2", lambda: client.jobs.list(workspace=ws, page=2, page_size=1, sort="created_at"))
    rec.call("job retrieve missing", lambda: client.jobs.retrieve("no-such-job", workspace=ws))

    # -- paging, sort and every filter form ---------------------------------------------------------
    for i in range(4):
        rec.call(
            f"create page-{i}",
            lambda i=i: client.models.create(
                workspace=ws, name=f"page-{i}", description=f"page {i}", project="support" if i % 2 else None
            ),
        )
    rec.call("list page_size=2", lambda: list(client.models.list(workspace=ws, page_size=2, sort="name").iter_pages()))
    for sort in ("name", "-name", "created_at", "-created_at"):
        rec.call(f"list sort {sort}", lambda s=sort: client.models.list(workspace=ws, sort=s))
    filters: dict[str, Any] = {
        "name str": {"name": "page-1"},
        "name $eq": {"name": {"eq": "page-2"}},
        "name $like": {"name": {"like": "page"}},
        "name $like %": {"name": {"like": "page-%"}},
        "name $in": {"name": {"in_": ["page-0", "page-3", "nothing"]}},
        "name $nin": {"name": {"nin": ["page-0", "page-3"]}},
        "description $like": {"description": {"like": "page"}},
        "project": {"project": "support"},
        "fileset true": {"fileset": True},
        "fileset false": {"fileset": False},
        "fileset ref": {"fileset": f"{ws}/ckpt"},
        "base_model true": {"base_model": True},
        "base_model name": {"base_model": "meta/llama-3.1-8b-instruct"},
        "finetuning_type": {"finetuning_type": "lora_merged"},
        "prompt true": {"prompt": True},
        "created_at $gte": {"created_at": {"gte": "2020-01-01T00:00:00"}},
    }
    for label, wanted in filters.items():
        rec.call(f"list filter {label}", lambda f=wanted: client.models.list(workspace=ws, filter=f))
    rec.call(
        "list unknown filter",
        lambda: raw.get(f"/apis/models/v2/workspaces/{ws}/models", params={"filter[colour]": "blue"}),
    )
    rec.call("list page beyond", lambda: client.models.list(workspace=ws, page=9, page_size=2))

    # -- errors -------------------------------------------------------------------------------------
    rec.call("create duplicate", lambda: client.models.create(workspace=ws, name="sdk-bot"))
    rec.call("create missing fileset", lambda: client.models.create(workspace=ws, name="lost", fileset="nowhere"))
    rec.call("update missing fileset", lambda: client.models.update("page-0", workspace=ws, fileset="nowhere"))
    rec.call("update missing model", lambda: client.models.update("nobody", workspace=ws, description="x"))
    rec.call("create bad name", lambda: client.models.create(workspace=ws, name="Support-LLM-20260101T000000"))
    rec.call(
        "create partial spec",
        lambda: raw.post(
            f"/apis/models/v2/workspaces/{ws}/models", json={"name": "partial", "spec": {"family": "llama"}}
        ),
    )
    rec.call(
        "create bad enum and long description",
        lambda: raw.post(
            f"/apis/models/v2/workspaces/{ws}/models",
            json={"name": "wrong", "finetuning_type": "sideways", "description": "x" * 1001},
        ),
    )
    rec.call(
        "create inference_params",
        lambda: client.models.create(
            workspace=ws, name="params", prompt={"inference_params": {"temperature": 0.5, "stop": ["\n"]}}
        ),
    )
    rec.call("retrieve inference_params", lambda: client.models.retrieve("params", workspace=ws))
    rec.call("delete fileset in use", lambda: filesets.delete("ckpt", workspace=ws))
    rec.call("delete fileset used by a failed analysis", lambda: filesets.delete("empty", workspace=ws))
    rec.call("fileset create spare", lambda: filesets.create(name="spare", purpose="model"))
    rec.call("delete fileset unused", lambda: filesets.delete("spare", workspace=ws))
    rec.call("retrieve deleted fileset", lambda: filesets.retrieve("spare", workspace=ws))
    rec.call("delete", lambda: client.models.delete("page-3", workspace=ws))
    rec.call("retrieve deleted", lambda: client.models.retrieve("page-3", workspace=ws))
    rec.call("delete again", lambda: client.models.delete("page-3", workspace=ws))

    out.write_text(json.dumps({"entries": rec.entries, "sdk": nemo_platform.__version__}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
