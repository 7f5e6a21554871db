"""A real Dask cluster for tests: `dask scheduler` and `dask worker` processes on loopback (no
mocks), each in a session of its own so that stopping one stops its nanny and worker together.
The scheduler listens on a fixed port, so a restarted scheduler has the same address."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import wait_for

DASK = str(Path(sys.executable).parent / "dask")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_workers(address: str, count: int, seconds: float = 180) -> None:
    from distributed import Client

    with Client(address, set_as_default=False, timeout=60) as client:
        client.wait_for_workers(count, timeout=seconds)


class DaskProcesses:
    """Start with :meth:`start_scheduler` and :meth:`start_workers`; :meth:`stop` ends them all."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self._logs = 0

    def _start(self, *args) -> subprocess.Popen:
        self._logs += 1
        with open(self.folder / f"{args[0]}-{self._logs}.log", "w") as out:
            return subprocess.Popen([DASK, *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def start_scheduler(self) -> None:
        file = self.folder / f"scheduler-{self._logs + 1}.json"
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                     "--no-dashboard", "--scheduler-file", str(file))

        def address():
            try:
                return json.loads(file.read_text()).get("address")
            except (OSError, ValueError):  # not written yet, or half written
                return None

        assert wait_for(address, 60), f"the scheduler did not start (see {self.folder})"

    def start_workers(self, count: int) -> None:
        for _ in range(count):
            n = len(self.workers)
            self.workers.append(self._start("worker", self.address, "--nthreads", "1", "--name", f"w{n}",
                                            "--no-dashboard", "--memory-limit", "0",
                                            "--local-directory", str(self.folder / f"w{n}")))
        wait_for_workers(self.address, count)

    @property
    def nannies(self) -> list[int]:
        return [p.pid for p in self.workers if p.poll() is None]

    def kill_scheduler(self) -> None:
        _end(self.scheduler, signal.SIGKILL)

    def stop(self) -> None:
        for proc in reversed([self.scheduler, *self.workers]):
            _end(proc, signal.SIGTERM)


def _end(proc: subprocess.Popen | None, sig: int) -> None:
    if proc is None:
        return
    for s in (sig, signal.SIGKILL):
        try:
            os.killpg(proc.pid, s)
            proc.wait(30)
            break
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.wait()
