"""Real ``mint_worker`` processes for tests: started against the test database and a sandbox."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection

MANAGE = str(Path(__file__).resolve().parent.parent / "manage.py")


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(sandbox, name: str, **env_extra) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MINT_API_URL": sandbox.url,
        "MINT_CLIENT_ID": "test-client",
        "MINT_CLIENT_SECRET": "test-secret-value",
        "MINT_WORKER_IDLE_SLEEP": "0.1",
        **env_extra,
    }
    return subprocess.Popen(
        [sys.executable, MANAGE, "mint_worker", "--name", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_for(predicate, *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(timeout=20)


class Lines:
    """Collects a process's stderr, line by line, as it comes."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def matching(self, *fragments: str) -> list[str]:
        return [line for line in self.lines if all(f in line for f in fragments)]
