"""`make test`: runs the whole suite against real servers where it can.

PostgreSQL: DATABASE_URL if set; else a throwaway cluster if PostgreSQL's binaries are on
this machine; else SQLite. Redis: CELERY_BROKER_URL if set; else a throwaway redis-server if
installed. Tests that need a missing server or browser are skipped and listed with the
reason (with RLHF_REQUIRE_SERVICES=1, as in CI, they fail instead).
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def postgres_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


@contextlib.contextmanager
def throwaway_postgres(bindir: Path) -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder on a free port; PostgreSQL refuses to run as root."""
    workdir = Path(tempfile.mkdtemp(prefix="rlhf-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    data, port = workdir / "data", free_port()
    run = lambda *cmd: subprocess.run([*as_user, *map(str, cmd)], check=True, stdout=subprocess.DEVNULL)  # noqa: E731
    run(bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
    run(
        bindir / "pg_ctl",
        "-D",
        data,
        "-l",
        workdir / "log",
        "-w",
        "-o",
        f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
        "start",
    )
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_redis(binary: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(args: list[str]) -> int:
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            bindir = postgres_bindir()
            if bindir:
                env["DATABASE_URL"] = stack.enter_context(throwaway_postgres(bindir))
                print(f"make test: started a throwaway PostgreSQL from {bindir}")
            else:
                print("make test: no DATABASE_URL and no PostgreSQL binaries: running on SQLite")
        if not env.get("CELERY_BROKER_URL"):
            redis = shutil.which("redis-server")
            if redis:
                env["CELERY_BROKER_URL"] = stack.enter_context(throwaway_redis(redis))
                print("make test: started a throwaway Redis")
            else:
                print("make test: no CELERY_BROKER_URL and no redis-server: tests that need Redis are skipped")
        pytest = [str(ROOT / ".venv" / "bin" / "pytest"), "-rs", *args]
        return subprocess.run(pytest, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
