"""NVIDIA's own SDK (``nemo_platform``) drives a NeMo Platform: run by tests/sandbox/test_nemo_sdk.py from
``.venv-nemo`` (the SDK never enters the provider's environment), against the sandbox.

``python session.py BASE_URL OUT.json`` writes one record per step: what the SDK returned (or raised), and
the problems found when the raw answer is judged by the SDK's own pydantic model: a field that fails the
model's validation, a field the model does not declare (it would land in ``model_extra``), a value that
reads back other than it was answered (misread), and any difference between what the SDK's client parsed
and the validated model.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import nemo_platform
from nemo_platform import NeMoPlatform
from nemo_platform.resources.files.filesets import FilesetsResource
from nemo_platform.types.files.fileset import Fileset
from nemo_platform.types.jobs.platform_job_response import PlatformJobResponse
from nemo_platform.types.models.model_entity import ModelEntity
from pydantic import BaseModel, ValidationError

WORKSPACE = "sdk"
# A tiny Llama checkpoint's config.json (the spec analysis derives the spec from it).
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "dtype": "float32",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "vocab_size": 256,
}


def _normal(value: Any) -> Any:
    """JSON values with timestamps as aware datetimes, so ``...+00:00`` and ``...Z`` compare equal."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _extras(model: BaseModel, where: str = "") -> list[str]:
    """Fields of the answer that the SDK's models do not declare, at any depth."""
    found = [f"{where}{key}: not a field of {type(model).__name__}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        found += _extras_in(getattr(model, name), f"{where}{name}.")
    return found


def _extras_in(value: Any, where: str) -> list[str]:
    if isinstance(value, BaseModel):
        return _extras(value, where)
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _extras_in(v, f"{where}{i}.")]
    return []


def _missing(model: BaseModel, raw: dict[str, Any], where: str = "") -> list[str]:
    """Declared fields the answer left out, in the entity and its spec (a GET answers every field, nulls too;
    only a list answer leaves nulls out)."""
    found = [
        f"{where}{name}: declared by {type(model).__name__} but not answered"
        for name in type(model).model_fields
        if name not in raw
    ]
    spec = getattr(model, "spec", None)
    if isinstance(spec, BaseModel) and isinstance(raw.get("spec"), dict):
        found += _missing(spec, raw["spec"], "spec.")
    return found


def judge(model_type: type[BaseModel], raw: Any, parsed: Any, complete: bool = False) -> list[str]:
    """The problems the SDK's model finds in one raw answer (an empty list: read whole and right)."""
    try:
        validated = model_type.model_validate(raw)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    problems = _extras(validated) + (_missing(validated, raw) if complete else [])
    dumped = validated.model_dump(mode="json", exclude_unset=True)
    if _normal(dumped) != _normal(raw):
        problems.append(f"reads back otherwise: answered {raw!r}, read {dumped!r}")
    if isinstance(parsed, BaseModel) and _normal(parsed.to_dict(mode="json")) != _normal(dumped):  # type: ignore[attr-defined]
        problems.append("the SDK client's parse differs from its validated model")
    return problems


class Recorder:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.answers: list[tuple[str, str, int, Any]] = []  # every HTTP answer: method, path, status, body

    def on_response(self, response: httpx.Response) -> None:
        response.read()
        body = response.json() if response.content and "json" in response.headers.get("content-type", "") else None
        self.answers.append((response.request.method, response.request.url.path, response.status_code, body))

    def last_body(self) -> Any:
        return self.answers[-1][3]

    def answer(self, step: str, model_type: type[BaseModel] | None, call: Any) -> Any:
        """Run ``call``; record what came back and what the SDK's model makes of the raw answer."""
        try:
            result = call()
        except nemo_platform.APIStatusError as exc:
            self.records.append(
                {
                    "step": step,
                    "raised": type(exc).__name__,
                    "status": exc.status_code,
                    "body": exc.body,
                    "message": exc.message,
                }
            )
            return None
        raw = self.last_body()
        record: dict[str, Any] = {"step": step, "status": self.answers[-1][2], "raw": raw}
        if model_type is not None:
            record["type"] = model_type.__name__
            record["problems"] = judge(model_type, raw, result, complete=model_type is ModelEntity)
        else:
            record["returned"] = repr(result)
        self.records.append(record)
        return result

    def page_records(self, step: str, pages: Any) -> None:
        """Every page the SDK's auto-pagination fetched: its raw body, each item judged, the page's names."""
        for number, page in enumerate(pages, start=1):
            raw = self.last_body()
            items = page.data or []
            problems = [
                p for item, raw_item in zip(items, raw["data"], strict=True) for p in judge(ModelEntity, raw_item, item)
            ]
            self.records.append(
                {
                    "step": f"{step} page {number}",
                    "raw": raw,
                    "names": [item.name for item in items],
                    "pagination": raw.get("pagination"),
                    "problems": problems,
                }
            )


def wait_for(read: Any, done: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        entity = read()
        if done(entity) or time.monotonic() > deadline:
            return entity
        time.sleep(0.1)


def create_sdk_bot(client: NeMoPlatform, ws: str) -> Any:
    """The model both sessions register (this one and differential.py): every field NVIDIA's SDK sends."""
    return client.models.create(
        workspace=ws,
        name="sdk-bot",
        fileset=f"{ws}/ckpt",
        description="registered by NVIDIA's SDK",
        project="support",
        base_model="meta/llama-3.1-8b-instruct",
        finetuning_type="lora_merged",
        api_endpoint={"url": "http://NIM.Example:80/v1", "model_id": "sdk-bot", "format": "openai"},
        backend_format="OPENAI_CHAT",
        prompt={"system_prompt": "Be brief.", "inference_params": {"temperature": 0.2, "max_tokens": 256}},
        custom_fields={"team": "support", "nested": {"k": [1, 2]}},
        model_providers=["default/nim"],
    )


def main(base_url: str, out: str) -> None:
    rec = Recorder()
    http = nemo_platform.DefaultHttpxClient(event_hooks={"response": [rec.on_response]})
    client = NeMoPlatform(base_url=base_url, workspace=WORKSPACE, max_retries=0, http_client=http)
    ws = WORKSPACE
    # The SDK's generated filesets resource: ``client.files`` is its upload helper, which needs the CLI's
    # dependencies (fsspec, jsonschema, ...), not installed here.
    filesets = FilesetsResource(client)

    # A workspace and a project are made first (the platform has only "default" and "system"); each fileset gets
    # a checkpoint's config.json (ckpt-v2 one layer deeper), which the spec analysis reads.
    raw = httpx.Client(base_url=base_url, timeout=30)
    raw.post("/apis/entities/v2/workspaces", json={"name": ws}).raise_for_status()
    raw.post(f"/apis/entities/v2/workspaces/{ws}/projects", json={"name": "support"}).raise_for_status()
    for name, layers in (("ckpt", 2), ("ckpt-v2", 3)):
        rec.answer(f"fileset create {name}", Fileset, lambda n=name: filesets.create(name=n, purpose="model"))
        config = CONFIG | {"num_hidden_layers": layers}
        raw.put(f"/apis/files/v2/workspaces/{ws}/filesets/{name}/-/config.json", json=config).raise_for_status()
    rec.answer("fileset retrieve", Fileset, lambda: filesets.retrieve("ckpt", workspace=ws))

    created = rec.answer(
        "create",
        ModelEntity,
        lambda: create_sdk_bot(client, ws),
    )
    rec.records.append(
        {"step": "create returned", "spec_is_none": created.spec is None, "url": str(created.api_endpoint.url)}
    )
    rec.answer("retrieve", ModelEntity, lambda: client.models.retrieve("sdk-bot", workspace=ws))
    filled = wait_for(lambda: client.models.retrieve("sdk-bot", workspace=ws), lambda e: e.spec is not None)
    rec.answer("retrieve with spec", ModelEntity, lambda: client.models.retrieve("sdk-bot", workspace=ws))
    rec.records.append(
        {
            "step": "spec filled",
            "checkpoint": filled.spec and filled.spec.checkpoint_model_name,
            "layers": filled.spec and filled.spec.num_layers,
        }
    )

    patched = rec.answer(
        "update",
        ModelEntity,
        lambda: client.models.update("sdk-bot", workspace=ws, description="v2", fileset=f"{ws}/ckpt-v2"),
    )
    rec.records.append({"step": "update returned", "layers": patched.spec and patched.spec.num_layers})
    later = wait_for(
        lambda: client.models.retrieve("sdk-bot", workspace=ws),
        lambda e: e.spec is not None and e.spec.num_layers == 3,
    )
    rec.records.append({"step": "spec after the new job", "layers": later.spec and later.spec.num_layers})

    for i in range(4):
        rec.answer(f"create page-{i}", ModelEntity, lambda i=i: client.models.create(workspace=ws, name=f"page-{i}"))
    rec.page_records("list page_size=2", client.models.list(workspace=ws, page_size=2).iter_pages())
    every = list(client.models.list(workspace=ws, page_size=2))
    rec.records.append({"step": "list auto-paginated", "names": [m.name for m in every]})
    rec.page_records("list filter name", client.models.list(workspace=ws, filter={"name": "page-1"}).iter_pages())
    rec.page_records("list default page", client.models.list(workspace=ws).iter_pages())

    jobs = rec.answer(
        "jobs list", None, lambda: client.jobs.list(workspace=ws, filter={"source": "models-system"}, page_size=50)
    )
    raw_jobs = rec.last_body()
    rec.records.append(
        {
            "step": "jobs judged",
            "problems": [
                p
                for job, raw in zip(jobs.data, raw_jobs["data"], strict=True)
                for p in judge(PlatformJobResponse, raw, job)
            ],
            "jobs": [(j.description, j.status) for j in jobs.data],
        }
    )

    rec.answer("create duplicate", ModelEntity, lambda: client.models.create(workspace=ws, name="sdk-bot"))
    rec.answer(
        "create missing fileset",
        ModelEntity,
        lambda: client.models.create(workspace=ws, name="lost", fileset=f"{ws}/nowhere"),
    )
    rec.answer(
        "update missing fileset", ModelEntity, lambda: client.models.update("page-0", workspace=ws, fileset="nowhere")
    )
    rec.answer(
        "create bad name", ModelEntity, lambda: client.models.create(workspace=ws, name="Support-LLM-20260101T000000")
    )
    rec.answer("delete", None, lambda: client.models.delete("sdk-bot", workspace=ws))
    rec.answer("retrieve deleted", ModelEntity, lambda: client.models.retrieve("sdk-bot", workspace=ws))

    with open(out, "w") as handle:
        json.dump(
            {"records": rec.records, "sdk": nemo_platform.__version__, "python": sys.version}, handle, default=str
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
