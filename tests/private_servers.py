"""PostgreSQL and Redis servers of a test's own, which it may stop and start again: an outage
is staged on these, never on the shared servers the rest of the suite uses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import free_port

START_TIMEOUT_S = 60
INITDB_OPTIONS = ("-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
REDIS_OPTIONS = ("--bind", "127.0.0.1", "--appendonly", "no", "--save", "")  # in memory only


def _require(what: str, found: object) -> None:
    if found:
        return
    if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


def _postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.

    PostgreSQL refuses to run as root, so as root it runs as the postgres system user (the
    directory is made in /tmp, which that user can reach, and handed to it).
    """

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        _require("PostgreSQL (/usr/lib/postgresql/*/bin)", bindir)
        assert bindir is not None
        self._bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="a2a-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self.running = False
        self._run("initdb", "-D", str(self.dir / "data"), *INITDB_OPTIONS)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT_S)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        data, log = str(self.dir / "data"), str(self.dir / "log")
        self._run(
            "pg_ctl", "-D", data, "-l", log, "-w", "-s", "-t", str(START_TIMEOUT_S), "-o", options, "start"
        )
        self.running = True

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: `immediate` aborts every session at once, as a crash would."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "-s", "stop")
        self.running = False

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text() if path.exists() else ""

    def remove(self) -> None:
        if self.running:
            self.stop("fast")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """An in-memory redis-server on a free port of 127.0.0.1, a child of the test process."""

    def __init__(self) -> None:
        _require("redis-server", shutil.which("redis-server"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until it answers PING."""
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), *REDIS_OPTIONS],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        """Kill the server (SIGKILL): its connections drop at once, and what it held is gone."""
        if self._proc is not None:
            self.resume()  # a stopped process dies only once it runs again
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def pause(self) -> None:
        """Freeze the server (SIGSTOP), as a host that hangs: connections open and stay open,
        and nothing is answered, so every call waits for its client's timeout."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a frozen server run again (SIGCONT), with what it held."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)
