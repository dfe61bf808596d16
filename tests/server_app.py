"""A real `langgraph dev` server for tests: the example in `examples/server`, on a free loopback port.

Everything that could reach the network is switched off (LangSmith tracing, CLI analytics, the
PyPI version check). The server runs in a temporary directory (the in-memory runtime persists to
`./.langgraph_api`) from a copy of the example's `langgraph.json` whose relative paths are made
absolute. Test modules start one each (`langgraph_dev`), as a module-scoped fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SERVER_DIR = Path(__file__).resolve().parents[1] / "examples" / "server"
READY_TIMEOUT_S = 60.0
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # langgraph-cli's usage analytics
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # langgraph-api's PyPI "newer version" check
    "PYTHONUNBUFFERED": "1",
}
NETWORK_SECRETS = (
    "LANGSMITH_API_KEY",
    "LANGCHAIN_API_KEY",
    "LANGGRAPH_API_KEY",
    "LANGSMITH_ENDPOINT",
    "LANGCHAIN_ENDPOINT",
)


def offline_env() -> dict[str, str]:
    """This process's environment without API keys or endpoints, with tracing and analytics off."""
    env = {k: v for k, v in os.environ.items() if k not in NETWORK_SECRETS}
    env.update(OFFLINE_ENV)
    return env


def _langgraph_cli() -> str:
    beside = Path(sys.executable).parent / "langgraph"
    found = str(beside) if beside.exists() else shutil.which("langgraph")
    if found is None:
        pytest.fail("the `langgraph` CLI is not installed: pip install 'reliable-graph[server]'")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config_copy(directory: Path) -> Path:
    """The example's langgraph.json with paths made absolute, so the server can run elsewhere."""
    config = json.loads((SERVER_DIR / "langgraph.json").read_text())
    for graph_id, spec in config["graphs"].items():
        path, variable = spec.rsplit(":", 1)
        config["graphs"][graph_id] = f"{(SERVER_DIR / path).resolve()}:{variable}"
    config["dependencies"] = [
        str((SERVER_DIR / dep).resolve()) if dep.startswith(".") else dep for dep in config.get("dependencies", [])
    ]
    target = directory / "langgraph.json"
    target.write_text(json.dumps(config))
    return target


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the server's own session: it and nothing else
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def langgraph_dev(workdir: Path) -> Iterator[str]:
    """Start `langgraph dev` on the example in `workdir`; yield its URL once it answers; stop it after."""
    config = _config_copy(workdir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [_langgraph_cli(), "dev", "--config", str(config), "--port", str(port), "--host", "127.0.0.1"]
    command += ["--no-browser", "--no-reload"]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=workdir, env=offline_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not ready after {READY_TIMEOUT_S:.0f}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.25)
        yield url
    finally:
        _stop(proc)
