"""A real ``mint_worker`` without its database: one clear ERROR per cause, retries with backoff,
and it carries on by itself once the database is ready (``plans.database_wait``)."""

import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time

from tests.processes import MANAGE, Lines, start_worker, stop, wait_for


def test_it_waits_for_an_unmigrated_database_and_carries_on_once_it_is_migrated(
    tmp_path, mint_sandbox
):
    database = tmp_path / "fresh.sqlite3"
    database.touch()
    url = f"sqlite:///{database}"
    worker = start_worker(mint_sandbox, "patient", DATABASE_URL=url, MINT_HEALTH_INTERVAL="600")
    log = Lines(worker)
    try:
        wait_for(
            lambda: log.matching("ERROR", "waiting for the database: it lacks"),
            seconds=20,
            what="the worker to say what it waits for",
        )
        time.sleep(4)  # three more tries (after 1, 2 and 4 s): no new ERROR, no traceback
        assert len(log.matching("ERROR")) == 1, log.lines
        assert "run manage.py migrate" in log.matching("ERROR")[0]
        assert log.matching("INFO", "still waiting for the database")
        assert not log.matching("Traceback"), log.lines

        migrate = subprocess.run(
            [sys.executable, MANAGE, "migrate", "--noinput"],
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stderr

        def beating() -> bool:
            with sqlite3.connect(database) as db:
                rows = db.execute(
                    "SELECT waiting_for FROM plans_workerheartbeat WHERE name = 'patient'"
                ).fetchall()
            return rows == [("",)]

        wait_for(beating, seconds=40, what="the worker to beat once the database is ready")
        wait_for(
            lambda: log.matching("INFO", "the database is ready again"),
            seconds=5,
            what="the worker to say it is back",
        )
    finally:
        code = stop(worker)
    assert code == 0
    assert len(log.matching("ERROR")) == 1, log.lines


def test_it_backs_off_while_the_database_does_not_answer(mint_sandbox):
    """A TCP listener stands in for a database server that accepts and hangs up: each time the
    worker tries, it connects; the pauses between tries double."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    connects: list[float] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            connects.append(time.monotonic())
            conn.close()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    worker = start_worker(
        mint_sandbox,
        "backing-off",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{port}/nowhere",
        MINT_HEALTH_INTERVAL="600",
    )
    log = Lines(worker)
    try:
        wait_for(lambda: connects, seconds=20, what="the first try")
        time.sleep(9.5)
        watched = len(connects)  # not the last heartbeat's try on the way out
    finally:
        code = stop(worker)
        done.set()
        acceptor.join()
        listener.close()
    assert code == 0

    # A try is a few connections within a moment (a probe, the query, SSL then plain).
    tries = [connects[0]]
    for at in connects[1:watched]:
        if at - tries[-1] > 0.5:
            tries.append(at)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(tries)]
    assert 3 <= len(gaps) <= 4, gaps  # after about 1, 2, 4 (and 8) s, not every 5 s
    assert all(later >= 1.7 * earlier for earlier, later in itertools.pairwise(gaps))
    errors = log.matching("ERROR")
    assert len(errors) == 1, log.lines
    assert "waiting for the database: it does not answer" in errors[0]
    assert not log.matching("Traceback"), log.lines
