"""Background server processes started by the CLI: start, wait for health, find again, stop only them.

A started process is recorded as a :class:`Service` (pid plus start time),
so a later command stops exactly that process and its children, never a
recycled pid. Each runs in its own session (process group) with its output
in a log file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil


@dataclass
class Service:
    """A process we started: enough to find it again and to stop only it."""

    name: str
    pid: int
    create_time: float
    url: str
    log: str

    def process(self) -> psutil.Process | None:
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except psutil.Error:
            pass
        return None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback only)
            return resp.status == 200
    except OSError:
        return False


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_process(name: str, cmd: list[str], url: str, log_dir: Path, *, cwd: Path | None = None,
                  extra_env: dict[str, str] | None = None) -> Service:
    """Start ``cmd`` in its own process group, output appended to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=cwd, env={**os.environ, **(extra_env or {})},
                                start_new_session=True)  # its own group: stopping it stops its children too
    return Service(name, proc.pid, psutil.Process(proc.pid).create_time(), url, str(log))


def wait_until_ready(service: Service, ready: Callable[[], bool], timeout_s: float,
                     error: type[Exception]) -> None:
    """Poll ``ready`` until it holds; a process that exits or stays unready raises ``error`` with its log tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process() is None:
            raise error(f"{service.name} exited during start-up; last lines of {service.log}:\n{tail(service.log)}")
        if ready():
            return
        time.sleep(0.2)
    raise error(f"{service.name} did not become healthy within {timeout_s:.0f} s; "
                f"last lines of {service.log}:\n{tail(service.log)}")


def stop_processes(services: list[Service], timeout_s: float = 10.0) -> list[str]:
    """SIGTERM each live service's group (last started first), SIGKILL what outlives ``timeout_s``."""
    stopped = []
    for service in reversed(services):
        proc = service.process()
        if proc is None:
            continue
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        group = [proc, *proc.children(recursive=True)] if proc.is_running() else []
        _, alive = psutil.wait_procs(group, timeout=timeout_s)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5)
        stopped.append(service.name)
    return stopped
