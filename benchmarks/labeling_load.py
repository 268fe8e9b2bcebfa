"""The labeling server under load: API clients asking for their next task and ranking it.

    .venv/bin/python benchmarks/labeling_load.py [--mode closed open scale soak] [--tasks 5000] [--clients 32]
        [--duration 30] [--rate 20] [--open-duration 60] [--labelers 64] [--minutes 10] [--workers 4] [--threads 4]
        [--selection random|uncertainty] [--url http://127.0.0.1:PORT --database-url postgres://...]

Without --url it creates a throwaway PostgreSQL database (on --pg), migrates it, starts gunicorn on
it (DJANGO_ENV=production, loopback only), and drops both at the end. With --url it drives that
server, seeding through --database-url, which must be the server's database. Each mode seeds its
own project (`manage.py seed_tasks`) and labeler accounts with tokens (`manage.py create_labeler`):

- closed: --clients clients call next + submit without pause for --duration seconds;
- open:   rankings arrive at --rate per second for --open-duration seconds, each started by a free
          client; a call's latency counts from its scheduled start, so queueing shows;
- scale:  next-task p50 with --scale-clients clients on a project of --scale-small tasks and on one
          of --scale-large tasks, in alternating rounds that rank 80% of the small one's tasks;
- soak:   --labelers clients (64) rank without pause for --minutes (10), tasks topped up as they run
          out: errors, rankings acknowledged / found / lost / duplicated, tasks over their overlap,
          p50/p99, and gunicorn's resident memory (all its processes, from /proc) at the start, every
          30 s and at the end. Not in the default modes: run it alone (`--mode soak`).

Clients are threads with one keep-alive http.client connection each (low CPU: the clients, gunicorn
and PostgreSQL share the machine). Prints one JSON line: rankings/s, p50/p95/p99 ms per call,
errors (non-2xx other than 204 "nothing left"), and tasks ranked by more labelers than their overlap,
counted in the database at the end.
"""

import argparse
import http.client
import io
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Tally:
    """What the clients saw; lists are appended to from many threads (list.append is atomic)."""

    next_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    ranked: list[int] = field(default_factory=list)  # task ids, one per stored ranking
    ranking_ids: list[int] = field(default_factory=list)  # the ids the server answered 201 with
    errors: list[str] = field(default_factory=list)
    nothing_left: list[int] = field(default_factory=list)

    def figures(self, elapsed: float) -> dict:
        return {
            "rankings": len(self.ranked),
            "seconds": round(elapsed, 2),
            "rankings_per_s": round(len(self.ranked) / elapsed, 1),
            "next_ms": percentiles(self.next_s),
            "submit_ms": percentiles(self.submit_s),
            "errors": len(self.errors),
            "error_samples": sorted(set(self.errors))[:5],
            "nothing_left_answers": len(self.nothing_left),
        }


def percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0), "n": len(ordered)}


class Client:
    """One labeler's keep-alive connection. Calls return (status, JSON body or None)."""

    def __init__(self, url: str, token: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile is reopened once
            try:
                self.connection.request(method, path, payload, headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                if attempt == 2:
                    raise
        return response.status, (json.loads(data) if data else None)

    def rank_next(self, project_id: int, tally: Tally, started: float) -> bool:
        """Next task, then a ranking of it; False once nothing is left. Latencies go to the tally."""
        status, task = self.call("GET", f"/api/tasks/next/?project={project_id}")
        tally.next_s.append(time.perf_counter() - started)
        if status == 204:
            tally.nothing_left.append(project_id)
            return False
        if status != 200:
            tally.errors.append(f"next {status}: {str(task)[:120]}")
            return True
        order = [[completion["id"]] for completion in reversed(task["completions"])]
        sent = time.perf_counter()
        status, ranking = self.call("POST", f"/api/tasks/{task['id']}/ranking/", {"order": order})
        tally.submit_s.append(time.perf_counter() - sent)
        if status == 201:
            tally.ranked.append(task["id"])
            tally.ranking_ids.append(ranking["id"])
        else:
            tally.errors.append(f"submit {status}: {str(ranking)[:120]}")
        return True


def run_threads(work, count: int) -> float:
    """Runs work(i) in `count` threads; returns the wall time until the last one ends."""
    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def closed_loop(
    url: str, tokens: list[str], project_id: int, duration: float, tally: Tally | None = None, each: int = 10**9
) -> tuple[Tally, float]:
    """Every client ranks without pause until `duration` seconds have passed or it ranked `each` tasks."""
    tally = tally or Tally()
    deadline = time.perf_counter() + duration

    def work(i: int) -> None:
        client = Client(url, tokens[i])
        try:
            for _ in range(each):
                if time.perf_counter() > deadline or not client.rank_next(project_id, tally, time.perf_counter()):
                    break
        except OSError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")

    return tally, run_threads(work, len(tokens))


def open_loop(url: str, tokens: list[str], project_id: int, rate: float, duration: float) -> tuple[Tally, float]:
    """Rankings scheduled every 1/rate s; a free client takes each. Next's latency counts from the schedule."""
    tally = Tally()
    scheduled: queue.Queue[float | None] = queue.Queue()
    total = int(rate * duration)

    def dispatch() -> None:
        start = time.perf_counter() + 0.1
        for n in range(total):
            at = start + n / rate
            time.sleep(max(0.0, at - time.perf_counter()))
            scheduled.put(at)
        for _ in tokens:
            scheduled.put(None)

    def work(i: int) -> None:
        client = Client(url, tokens[i])
        while (at := scheduled.get()) is not None:
            try:
                client.rank_next(project_id, tally, at)
            except OSError as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")

    dispatcher = threading.Thread(target=dispatch, daemon=True)
    dispatcher.start()
    elapsed = run_threads(work, len(tokens))
    dispatcher.join()
    return tally, elapsed


# --- set-up: database, server, project, accounts -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_database(pg: str, keep: bool):
    import psycopg

    name = f"rlhf_load_{secrets.token_hex(4)}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg}/{name}"
    finally:
        if not keep:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(f"{pg}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_env(database_url: str) -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DJANGO_ENV": "production",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_COOKIES": "0",  # plain HTTP on the loopback: no HTTPS redirect, no HSTS
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
    }


@contextmanager
def gunicorn(env: dict, workers: int, threads: int):
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "webapp.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--threads", str(threads), "--preload", "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=30)


def new_project(label: str, tasks: int, k: int, overlap: int, selection: str = "random"):
    from django.core.management import call_command

    from labeling.models import Project
    from training.services import do_create_project

    project = do_create_project(
        Project(
            name=f"load {label} {secrets.token_hex(3)}", k=k, overlap=overlap, lease_seconds=600, selection=selection
        )
    )
    if tasks:
        call_command("seed_tasks", project=str(project.pk), tasks=tasks, k=k, stdout=sys.stderr)
    return project


def labeler_tokens(project, count: int) -> list[str]:
    from django.core.management import call_command

    tokens = []
    for n in range(count):
        out = io.StringIO()
        call_command("create_labeler", f"load-{n}", project=[str(project.pk)], print_token=True, stdout=out)
        tokens.append(out.getvalue().strip())
    return tokens


def over_overlap(project) -> int:
    """Tasks with more rankings than their overlap: must be 0."""
    from django.db.models import Count, F

    from labeling.models import ComparisonTask

    ranked = ComparisonTask.objects.filter(project=project).annotate(n=Count("rankings"))
    return ranked.filter(n__gt=F("target_overlap")).count()


def warm_up(url: str, tokens: list[str], project_id: int) -> None:
    """Every worker process opens its database connection and loads its code before timing."""

    def work(i: int) -> None:
        client = Client(url, tokens[i])
        for _ in range(5):
            client.call("GET", f"/api/tasks/next/?project={project_id}")

    run_threads(work, len(tokens))


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each live process has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since `before` by the processes alive now (one that ended meanwhile is missed)."""
    return sum(now - before.get(pid, 0.0) for pid, now in cpu_by_pid(pids).items())


def server_pids(server) -> list[int]:
    if server is None:
        return []
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    return [server.pid, *map(int, children.read_text().split())] if children.exists() else [server.pid]


def database_pids() -> list[int]:
    """The PostgreSQL backends serving this database (the server's connections persist)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def measured(run, url: str, tokens: list[str], project, server) -> dict:
    """Runs the load; adds the CPU seconds the client, gunicorn and PostgreSQL spent meanwhile."""
    from django.db import connections

    warm_up(url, tokens, project.pk)
    database_cpu = cpu_by_pid(database_pids())
    connections.close_all()
    pids = server_pids(server)
    client_cpu, server_cpu = time.process_time(), cpu_by_pid(pids)
    tally, elapsed = run()
    figures = tally.figures(elapsed)
    figures["client_cpu_s"] = round(time.process_time() - client_cpu, 2)
    if pids:
        figures["gunicorn_cpu_s"] = round(cpu_since(server_cpu, pids), 2)
    figures["postgres_cpu_s"] = round(cpu_since(database_cpu, database_pids()), 2)
    figures["tasks_over_overlap"] = over_overlap(project)
    return figures


def rss_mib(pids: list[int]) -> float:
    """Resident memory of the live processes among `pids`, summed, in MiB (VmRSS from /proc)."""
    kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kib += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(kib / 1024, 1)


def soak(url: str, args, server) -> dict:
    """--labelers clients ranking for --minutes; tasks are topped up meanwhile, memory sampled."""
    from django.core.management import call_command
    from django.db import connection, connections
    from django.db.models import Count

    from labeling.models import ComparisonTask, Ranking

    project = new_project("soak", args.tasks, args.k, args.overlap, args.selection)
    tokens = labeler_tokens(project, args.labelers)
    warm_up(url, tokens, project.pk)
    connections.close_all()
    tally, stop, started = Tally(), threading.Event(), time.perf_counter()
    memory = [{"s": 0, "rss_mib": rss_mib(server_pids(server)), "rankings": 0}]

    def top_up() -> None:  # more tasks whenever fewer than 20 per labeler are open: nobody runs dry
        try:
            while not stop.wait(5):
                if ComparisonTask.objects.filter(project=project, state="open").count() < 20 * len(tokens):
                    call_command(
                        "seed_tasks", project=str(project.pk), tasks=args.tasks, k=args.k, stdout=io.StringIO()
                    )
        finally:
            connection.close()

    def sample() -> None:
        while not stop.wait(30):
            elapsed = round(time.perf_counter() - started)
            memory.append({"s": elapsed, "rss_mib": rss_mib(server_pids(server)), "rankings": len(tally.ranked)})

    helpers = [threading.Thread(target=work, daemon=True) for work in (top_up, sample)]
    for helper in helpers:
        helper.start()
    _, elapsed = closed_loop(url, tokens, project.pk, 60 * args.minutes, tally)
    stop.set()
    for helper in helpers:
        helper.join()
    memory.append({"s": round(elapsed), "rss_mib": rss_mib(server_pids(server)), "rankings": len(tally.ranked)})
    acknowledged = set(tally.ranking_ids)
    found = Ranking.objects.filter(pk__in=acknowledged).count()
    twice = Ranking.objects.filter(task__project=project).values("task", "labeler").annotate(n=Count("pk"))
    figures = tally.figures(elapsed)
    return {
        "labelers": args.labelers,
        "minutes": args.minutes,
        **{
            key: figures[key]
            for key in ("rankings", "rankings_per_s", "errors", "error_samples", "nothing_left_answers")
        },
        "rankings_acknowledged": len(tally.ranking_ids),
        "rankings_found": found,
        "rankings_lost": len(acknowledged) - found,
        "rankings_duplicated": len(tally.ranking_ids) - len(acknowledged) + twice.filter(n__gt=1).count(),
        "tasks_over_overlap": over_overlap(project),
        "next_ms": figures["next_ms"],
        "submit_ms": figures["submit_ms"],
        "gunicorn_rss_mib_start": memory[0]["rss_mib"],
        "gunicorn_rss_mib_end": memory[-1]["rss_mib"],
        "gunicorn_rss_mib": memory,
    }


def scaling(url: str, args) -> dict:
    """Next-task latency on a small and a large project, measured in alternating rounds so that a
    change in the machine's load during the run weighs on both alike. Each round ranks the same
    number of tasks in each project, 80% of the small project's tasks over all rounds."""
    from django.db import connections

    projects = [
        new_project(f"scale {size}", size, args.k, args.overlap, args.selection)
        for size in (args.scale_small, args.scale_large)
    ]
    tokens = labeler_tokens(projects[0], args.scale_clients)
    labeler_tokens(projects[1], args.scale_clients)  # the same accounts label both
    for project in projects:
        warm_up(url, tokens, project.pk)
    connections.close_all()
    tallies, elapsed = [Tally(), Tally()], [0.0, 0.0]
    rounds = 6
    each = max(1, int(0.8 * args.scale_small / (rounds * args.scale_clients)))
    for _ in range(rounds):
        for n, project in enumerate(projects):
            elapsed[n] += closed_loop(url, tokens, project.pk, 600, tallies[n], each)[1]
    result = {
        f"{project.tasks.count():,} tasks": {**tally.figures(seconds), "tasks_over_overlap": over_overlap(project)}
        for project, tally, seconds in zip(projects, tallies, elapsed, strict=True)
    }
    small, large = (tally.figures(1)["next_ms"]["p50"] for tally in tallies)
    return {**result, "clients": args.scale_clients, "next_p50_ratio_large_to_small": round(large / small, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode", nargs="+", choices=["closed", "open", "scale", "soak"], default=["closed", "open", "scale"]
    )
    parser.add_argument("--tasks", type=int, default=5000, help="Tasks seeded for the closed and open modes.")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument(
        "--selection", choices=["random", "uncertainty"], default="random", help="The projects' task selection."
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=30, help="closed: seconds.")
    parser.add_argument("--rate", type=float, default=20, help="open: rankings per second.")
    parser.add_argument("--open-duration", type=float, default=60, help="open: seconds.")
    parser.add_argument("--scale-small", type=int, default=1_000)
    parser.add_argument("--scale-large", type=int, default=100_000)
    parser.add_argument("--scale-clients", type=int, default=4)
    parser.add_argument("--labelers", type=int, default=64, help="soak: clients.")
    parser.add_argument("--minutes", type=float, default=10, help="soak: minutes.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per worker (more than 1: gthread).")
    parser.add_argument("--url", help="A running server to drive instead of starting gunicorn.")
    parser.add_argument("--database-url", help="With --url: the server's (migrated) database.")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="Where the throwaway DB goes.")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    if args.url and not args.database_url:
        parser.error("--url needs --database-url (the server's database, to seed and check it)")
    for host in filter(None, [args.url, args.database_url, args.pg]):
        if urlsplit(host).hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error(f"{host}: loopback addresses only")

    with ExitStack() as stack:
        database_url = args.database_url or stack.enter_context(throwaway_database(args.pg, args.keep_db))
        env = server_env(database_url)
        os.environ.update({key: env[key] for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "LOG_LEVEL")})
        import django
        from django.core.management import call_command

        django.setup()
        if not args.url:
            call_command("migrate", verbosity=0)
        url, server = args.url, None
        if not url:
            url, server = stack.enter_context(gunicorn(env, args.workers, args.threads))
        result = {
            "server": url if args.url else f"gunicorn {args.workers} workers x {args.threads} threads",
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg()[0],
        }
        if "closed" in args.mode:
            project = new_project("closed", args.tasks, args.k, args.overlap, args.selection)
            tokens = labeler_tokens(project, args.clients)
            run = lambda: closed_loop(url, tokens, project.pk, args.duration)  # noqa: E731
            result["closed"] = {
                "selection": args.selection,
                "clients": args.clients,
                "tasks": args.tasks,
                **measured(run, url, tokens, project, server),
            }
        if "open" in args.mode:
            project = new_project("open", args.tasks, args.k, args.overlap, args.selection)
            tokens = labeler_tokens(project, args.clients)
            run = lambda: open_loop(url, tokens, project.pk, args.rate, args.open_duration)  # noqa: E731
            result["open"] = {"rate": args.rate, "tasks": args.tasks, **measured(run, url, tokens, project, server)}
        if "scale" in args.mode:
            result["scale"] = scaling(url, args)
        if "soak" in args.mode:
            result["soak"] = soak(url, args, server)
        result["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
