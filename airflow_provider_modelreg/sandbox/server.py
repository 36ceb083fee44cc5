"""Run the sandbox on loopback, in a background thread (tests) or in the foreground (the CLI)."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn

from airflow_provider_modelreg.sandbox.app import Sandbox


class SandboxServer:
    """``with SandboxServer() as server: server.url`` — port 0 picks a free port."""

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "critical",
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
    ) -> None:
        self.sandbox = sandbox or Sandbox()
        # With a certificate and key it serves HTTPS (e.g. OKE's proxymux, which is reached over TLS only).
        config = uvicorn.Config(
            self.sandbox.app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            access_log=False,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        self.scheme = "https" if ssl_certfile else "http"
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.run, name="modelreg-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
