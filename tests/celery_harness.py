"""A real Redis and real Celery workers for the engine tests, all on 127.0.0.1.

`RedisServer` starts Debian's `redis-server` on a free port with no persistence (a restart
loses its queues, as a crash would); `Worker` runs `newswire worker` in its own process group,
so a test can kill it whole with SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, free_port, write_config


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed (.ci/run installs it)")
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def celery_config(path: Path, feeds: list[str], broker: str, **sections: Any) -> Path:
    """A test config (pipeline/tests conventions) with `engine: {kind: celery}`."""
    engine = {"kind": "celery", "broker": broker, "task_timeout": "20s",
              "visibility_timeout": "30s", "worker_wait": "3s", "task_retries": 3}
    engine.update(sections.pop("engine", {}))
    return write_config(path, feeds, engine=engine, **sections)


def local_twin(config: Path, path: Path, database: str) -> Path:
    """The same config with the local engine and another database."""
    data = yaml.safe_load(config.read_text())
    data.pop("engine", None)
    data["database"] = database
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Worker:
    """`newswire worker` on a config, in its own process group."""

    def __init__(self, config: Path, concurrency: int = 1) -> None:
        # The log goes to a file, not a pipe: a worker logs a line per task, and a pipe
        # nobody reads until stop() fills up and blocks it mid-run.
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the worker)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "--config", str(config), "worker",
             f"--concurrency={concurrency}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the worker and its processes, as the OOM killer or a pulled plug would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        """SIGTERM (warm shutdown); returns what it logged."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def wait_for_workers(broker: str, count: int, timeout: float = 60) -> None:
    """Until `count` workers answer a ping on the broker."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5) or []) >= count:
            return
    raise RuntimeError(f"fewer than {count} workers answered")
