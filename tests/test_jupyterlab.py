"""`make lab` end to end: a real JupyterLab server opens 01_eda, starts its python3 kernel (this environment's Python)
and runs the notebook's first cells (bootstrap if any, parameters, imports + banner) over the kernel websocket."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jupyter_server")
pytest.importorskip("jupyterlab")
websocket = pytest.importorskip("tornado.websocket")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/01_eda.ipynb"
START_TIMEOUT = 60.0
CELL_TIMEOUT = 90.0  # the import cell loads torch: a few seconds, more on a busy machine
REQUEST_TIMEOUT = 15.0
# 127.0.0.1 must never go through a proxy set in the environment
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Server:
    """A running Jupyter server: its process, address, token, private runtime folder and log file."""

    process: subprocess.Popen
    token: str
    runtime: Path
    log: Path
    url: str = ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"


@dataclass
class CellRun:
    """What one execute_request produced: the reply status, the text outputs and any error."""

    status: str = ""
    text: str = ""
    errors: list[str] = field(default_factory=list)


def request(server: Server, method: str, path: str, body: Any = None) -> Any:
    """One REST call to the server with the token; the decoded JSON answer (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"token {server.token}", "Content-Type": "application/json"}
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    with OPENER.open(req, timeout=REQUEST_TIMEOUT) as answer:
        raw = answer.read()
    return json.loads(raw) if raw else None


def server_environment(tmp_path: Path, data_dir: Path) -> dict[str, str]:
    """The server's (and so the kernel's) environment: smoke preset, Agg, the test's data, private Jupyter folders."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTER")}
    env.update(SKIN_LESION_PRESET="smoke", MPLBACKEND="Agg", HAM10000_DIR=str(data_dir),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), IPYTHONDIR=str(tmp_path / "ipython"))
    return env


def wait_until_up(server: Server) -> None:
    """Poll until the server wrote its info file and answers /api/status with the token (bounded)."""
    info = server.runtime / f"jpserver-{server.process.pid}.json"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            server.url = server.url or json.loads(info.read_text())["url"]
            request(server, "GET", "api/status")
            return
        except (OSError, ValueError, KeyError):  # not written yet / not listening yet
            time.sleep(0.3)
    pytest.fail(f"jupyter lab did not answer within {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains text (Linux /proc; empty elsewhere): finds kernels by their connection file."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:  # the process ended meanwhile
            continue
    return [pid for pid in pids if pid != os.getpid()]


def stop(server: Server) -> None:
    """Shut the server down (POST /api/shutdown), then make sure it and its kernels are gone."""
    try:
        if server.url and server.process.poll() is None:
            request(server, "POST", "api/shutdown")
        server.process.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if server.process.poll() is None:
                os.killpg(server.process.pid, sig)
                try:
                    server.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
    for pid in processes_mentioning(str(server.runtime)):  # a kernel left behind by a killed server
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.fixture
def lab_server(tmp_path: Path, synthetic_dir: Path) -> Iterator[Server]:
    """JupyterLab on 127.0.0.1 (a free port), rooted at the project, with a token; always stopped afterwards."""
    token = secrets.token_hex(16)
    runtime = tmp_path / "runtime"
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
               "--ServerApp.port=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=server_environment(tmp_path, synthetic_dir), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(process, token, runtime, log)
    try:
        wait_until_up(server)
        yield server
    finally:
        stop(server)


def message(session: str, msg_type: str, content: dict[str, Any]) -> dict[str, Any]:
    """A shell-channel message in the websocket's JSON protocol."""
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": session, "username": "test",
              "version": "5.3", "date": datetime.now(timezone.utc).isoformat()}
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
            "buffers": []}


async def exchange(conn: Any, request_msg: dict[str, Any], timeout: float) -> tuple[dict[str, Any], CellRun]:
    """Send one request; collect iopub outputs until both its reply and its idle status came (bounded)."""
    msg_id = request_msg["header"]["msg_id"]
    await conn.write_message(json.dumps(request_msg))
    run, reply, idle = CellRun(), None, False
    deadline = time.monotonic() + timeout
    while reply is None or not idle:
        raw = await asyncio.wait_for(conn.read_message(), max(deadline - time.monotonic(), 0.01))
        if raw is None:
            raise AssertionError(f"kernel websocket closed while waiting for {request_msg['header']['msg_type']}")
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if msg["channel"] == "shell":
            reply = msg
        elif kind == "status":
            idle = content["execution_state"] == "idle"
        elif kind == "stream":
            run.text += content["text"]
        elif kind in ("execute_result", "display_data"):
            run.text += content["data"].get("text/plain", "") + "\n"
        elif kind == "error":
            run.errors.append(f"{content['ename']}: {content['evalue']}")
    run.status = reply["content"].get("status", "")
    return reply, run


async def run_in_kernel(ws_url: str, sources: list[str]) -> tuple[dict[str, Any], list[CellRun]]:
    """Over the kernel's channels websocket: kernel_info, then each source in order; the info reply and the runs."""
    session = uuid.uuid4().hex
    conn = await asyncio.wait_for(websocket.websocket_connect(f"{ws_url}&session_id={session}"), REQUEST_TIMEOUT)
    try:
        info, _ = await exchange(conn, message(session, "kernel_info_request", {}), CELL_TIMEOUT)
        runs = []
        for source in sources:
            content = {"code": source, "silent": False, "store_history": True, "user_expressions": {},
                       "allow_stdin": False, "stop_on_error": True}
            runs.append((await exchange(conn, message(session, "execute_request", content), CELL_TIMEOUT))[1])
            if runs[-1].status != "ok":
                break
        return info, runs
    finally:
        conn.close()


def tags(cell: dict[str, Any]) -> list[str]:
    """A cell's tags."""
    return cell.get("metadata", {}).get("tags", [])


def source(cell: dict[str, Any]) -> str:
    """A cell's source as one string (the contents API may give a list of lines)."""
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def first_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    """The code cells a learner runs first: the colab-bootstrap cell if any, the parameters cell, the import cell."""
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    params = [i for i, cell in enumerate(code) if "parameters" in tags(cell)]
    assert len(params) == 1, f"{NOTEBOOK}: expected one code cell tagged 'parameters', found {len(params)}"
    leading = code[:params[0]]
    assert len(leading) <= 1 and all("colab-bootstrap" in tags(cell) for cell in leading), \
        f"{NOTEBOOK}: only a cell tagged 'colab-bootstrap' may come before the parameters cell"
    assert len(code) > params[0] + 1, f"{NOTEBOOK}: no code cell after the parameters cell"
    return code[:params[0] + 2]


def test_lab_server_opens_01_eda_and_runs_its_first_cells(lab_server: Server) -> None:
    model = request(lab_server, "GET", f"api/contents/{NOTEBOOK}?content=1")
    assert model["type"] == "notebook"
    notebook = model["content"]
    kernel_name = notebook["metadata"]["kernelspec"]["name"]
    assert kernel_name in request(lab_server, "GET", "api/kernelspecs")["kernelspecs"]
    cells = first_cells(notebook)

    session = request(lab_server, "POST", "api/sessions", {"path": NOTEBOOK, "name": Path(NOTEBOOK).name,
                                                           "type": "notebook", "kernel": {"name": kernel_name}})
    kernel_id = session["kernel"]["id"]
    ws_url = lab_server.url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels?token={lab_server.token}"
    probe = "import json, os, sys; print(json.dumps({'prefix': sys.prefix, 'cwd': os.getcwd(), 'pid': os.getpid()}))"
    try:
        info, runs = asyncio.run(run_in_kernel(ws_url, [probe] + [source(cell) for cell in cells]))
    finally:
        request(lab_server, "DELETE", f"api/kernels/{kernel_id}")

    assert info["content"]["language_info"]["name"] == "python"
    for cell, run in zip([None] + cells, runs):
        where = "probe" if cell is None else f"cell tagged {tags(cell)}:\n{source(cell)[:300]}"
        assert run.status == "ok", f"{NOTEBOOK} {where}\nfailed: {run.errors}\n{run.text[-2000:]}"
    assert len(runs) == len(cells) + 1
    kernel = json.loads(runs[0].text.strip().splitlines()[-1])
    assert Path(kernel["prefix"]).resolve() == Path(sys.prefix).resolve(), "the python3 kernel is not this environment"
    assert Path(kernel["cwd"]).resolve() == (ROOT / NOTEBOOK).parent.resolve()
    assert "preset smoke" in runs[-1].text, f"no banner with the smoke preset in the import cell's output:\n{runs[-1].text}"

    deadline = time.monotonic() + 10
    while kernel["pid"] in processes_mentioning(str(lab_server.runtime)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernel["pid"] not in processes_mentioning(str(lab_server.runtime)), "DELETE left the kernel running"
    assert kernel_id not in {k["id"] for k in request(lab_server, "GET", "api/kernels")}
