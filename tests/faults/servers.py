"""Real servers for the fault tests, each started here on a free port and stopped by its PID: a
throwaway PostgreSQL cluster (initdb, pg_ctl), a redis-server, gunicorn. Never the machine's own."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from scripts.run_tests import free_port, postgres_bindir, wait_for_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """Whether `pid` is no longer a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def wait_gone(pid: int, seconds: float = 30) -> None:
    wait_until(lambda: gone(pid), seconds, f"process {pid} still runs", interval=0.05)


class PostgresCluster:
    """A cluster in a temporary folder on a free port; PostgreSQL refuses to run as root."""

    def __init__(self, bindir: Path):
        self.bindir, self.port = bindir, free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="rlhf-fault-pg-"))
        self.data = self.workdir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.workdir, "postgres")

    def _run(self, *command) -> None:
        subprocess.run([*self.as_user, *map(str, command)], check=True, stdout=subprocess.DEVNULL)

    def init(self) -> None:
        self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-l", self.workdir / "log", "-w", "-o", options, "start")

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill(self) -> None:
        """Immediate shutdown by the postmaster's PID (SIGQUIT): every backend dies mid-query, as in a
        crash; the next start recovers from the WAL."""
        pid = self.pid
        os.kill(pid, signal.SIGQUIT)
        wait_gone(pid)

    def url(self, name: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("needs PostgreSQL's binaries (initdb, pg_ctl) for a throwaway cluster")
    cluster = PostgresCluster(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class RedisServer:
    """A redis-server without persistence on a free port; stop() and start() keep the port."""

    def __init__(self):
        self.port, self.process = free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def llen(self, key: str) -> int:
        out = subprocess.run(["redis-cli", "-p", str(self.port), "LLEN", key], capture_output=True, text=True)
        return int(out.stdout.strip() or 0)


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        raise RuntimeError("needs redis-server for a throwaway Redis")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def django_env(database_url: str, **extra: str) -> dict:
    """The environment of a server process: no DEBUG (no debug pages), loopback only."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "ERROR",
        **extra,
    }


def seed(env: dict, tasks: int, labelers: int, k: int = 4, overlap: int = 2) -> dict:
    """Migrates the database and seeds it (tests.faults.seed); returns its JSON."""
    command = [sys.executable, "-m", "tests.faults.seed", f"--tasks={tasks}", f"--labelers={labelers}",
               f"--k={k}", f"--overlap={overlap}"]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def gunicorn(env: dict, workers: int = 2, threads: int = 8) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--threads", str(threads), "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_for_port(port, seconds=60)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=30)
