"""The `a2a-goals` command line."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

import typer
import uvicorn
from rich.console import Console

from infrastructure.settings import Settings
from interfaces.bootstrap import build_system, settle_heap
from interfaces.cli.audit import audit_app
from interfaces.cli.backup import backup_app
from interfaces.cli.keys import keys_app
from interfaces.cli.tenants import tenants_app
from interfaces.logs import configure_logging
from interfaces.metrics import MULTIPROC_DIR, metrics_dir

app = typer.Typer(help="Event-sourced goals and registry for A2A agents.", no_args_is_help=True)
console = Console(stderr=True)
WORKER_HEALTHCHECK_S = 60


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (embedded SQLite store unless DATABASE_URL names PostgreSQL)."""
    settings = Settings()
    # Each server process learns it is one of several (an in-process card cache is then off:
    # another process's projections could not evict it).
    os.environ["SERVE_WORKERS"] = str(workers)
    # The server processes' own Settings (the dev client's hint names the address) see the options.
    if host:
        os.environ["HOST"] = host
    if port:
        os.environ["PORT"] = str(port)
    if workers > 1:
        # /metrics counts every worker's requests, whichever answers the scrape.
        os.environ[MULTIPROC_DIR] = str(metrics_dir(os.environ.get(MULTIPROC_DIR)))
    configure_logging(settings.debug, settings.log_format)  # this process's lines (the supervisor's)
    console.print(
        f"a2a-goals on http://{host or settings.host}:{port or settings.port} "
        f"(store: {settings.redacted_database_url()}); docs at /docs, dashboard at /dashboard"
    )
    uvicorn.run(
        "interfaces.http.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        # A worker process starts by importing the whole app, which takes seconds on a busy
        # machine: uvicorn's default of 5 s without an answer has it killed and restarted,
        # again and again.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
        # DEBUG: uvicorn's debug lines and an access line per request (never in prod); each
        # server process sets up its own logging as it imports the app (interfaces.http.asgi)
        log_level="debug" if settings.debug else "warning",
        # uvicorn's lines go through our handlers (JSON or text), not a format of its own.
        log_config=None,
        access_log=settings.debug,
        # The caller's address (per-address limits, denials) comes from X-Forwarded-For only
        # when the peer is one of TRUSTED_PROXIES; with none, the header is never read
        # (uvicorn would otherwise trust loopback, or its own FORWARDED_ALLOW_IPS).
        proxy_headers=bool(settings.trusted_proxy_list),
        forwarded_allow_ips=settings.trusted_proxy_list or None,
    )


@app.command()
def project() -> None:
    """Run the projections as their own process until interrupted (SIGTERM/SIGINT)."""
    settings = Settings()
    configure_logging(settings.debug, settings.log_format)  # before start-up, whose migrations log too
    system = build_system(settings)
    settle_heap()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"projecting {', '.join(system.runner.names)} from {system.settings.redacted_database_url()}"
    )
    system.start_projections()
    reported: BaseException | None = None
    try:
        while not stop.wait(1.0):
            if system.runner.failure is not None and system.runner.failure is not reported:
                reported = system.runner.failure
                console.print(f"[red]read model failed[/] (the others go on): {reported}")
    finally:
        system.close()


@app.command()
def worker(
    threads: Annotated[
        int | None, typer.Option(min=1, max=64, help="Threads running jobs (default: WORKER_THREADS).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Serve this process's Prometheus metrics on HOST:PORT."),
    ] = None,
) -> None:
    """Run background jobs from BROKER_URL's queues until interrupted (SIGTERM/SIGINT)."""
    from interfaces.workers.worker import run_worker

    settings = _with_broker()
    configure_logging(settings.debug, settings.log_format)
    count = threads or settings.worker_threads
    console.print(
        f"worker: {count} threads, queues {settings.queue_prefix}.* on {_redacted(settings.broker_url)}"
    )
    run_worker(settings, count, metrics_port)


@app.command()
def scheduler() -> None:
    """Send the periodic jobs to BROKER_URL when due, until interrupted (SIGTERM/SIGINT).
    Run one: a poll is not sent while the one before it is pending or running."""
    from interfaces.workers.scheduler import polls, run_scheduler

    settings = _with_broker()
    configure_logging(settings.debug, settings.log_format)
    due = ", ".join(f"{p.actor} every {p.every_s:g}s" for p in polls(settings)) or "nothing"
    console.print(f"scheduler: {due}, queues {settings.queue_prefix}.* on {_redacted(settings.broker_url)}")
    run_scheduler(settings)


def _with_broker() -> Settings:
    settings = Settings()
    if settings.broker_kind == "stub":
        console.print(
            "[red]BROKER_URL is not set[/]: without one, jobs run inside the API process"
            " (`a2a-goals serve`); set redis://... or amqp://... to run them here"
        )
        raise typer.Exit(2)
    return settings


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()
    return url


clients_app = typer.Typer(help="OAuth clients.", no_args_is_help=True)
app.add_typer(clients_app, name="clients")


@clients_app.command("create")
def clients_create(
    tenant: Annotated[str, typer.Option(help="Tenant the client acts in.")],
    scopes: Annotated[str, typer.Option(help='Space-separated, e.g. "goals:read goals:write".')],
    name: Annotated[str, typer.Option(help="A name for people.")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Register a client; its secret is printed once and only a hash is stored."""
    system = build_system()
    try:
        issued = system.clients.create(tenant, name, scopes.split(), actor="cli")
    finally:
        system.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "client_id": issued.client_id,
                    "client_secret": issued.client_secret,
                    "tenant": issued.tenant,
                    "scopes": list(issued.scopes),
                }
            )
        )
        return
    typer.echo(f"client_id:     {issued.client_id}\nclient_secret: {issued.client_secret}")
    console.print("The secret is shown once; store it now.")


app.add_typer(audit_app, name="audit")
app.registered_commands += backup_app.registered_commands  # `backup DIR`, `restore DIR`

app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")

projections_app = typer.Typer(help="Read models: status, rebuild, skip.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")


@projections_app.command("status")
def projections_status() -> None:
    """Position, lag (events and seconds) and state of every read model."""
    from rich.table import Table

    from projections.status import projection_status

    system = build_system()
    try:
        entries = projection_status(system.runner, system.goals.read_log, system.goals.log_position)
    finally:
        system.close()
    table = Table("read model", "position", "lag (events)", "lag (s)", "state", "error")
    for e in entries:
        table.add_row(
            e["name"],
            str(e["position"]),
            str(e["lag_events"]),
            f"{e['lag_s']:.1f}",
            e["state"],
            e["error"] or "",
        )
    Console().print(table)


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="Read model to rebuild.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Rebuild every read model in one pass.")] = False,
    restart: Annotated[
        bool, typer.Option(help="Discard an interrupted rebuild instead of resuming it.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Processes to replay several read models in (PostgreSQL); default REBUILD_JOBS."
        ),
    ] = None,
) -> None:
    """Replay the log into shadow tables and swap them in atomically."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from application.ports import ShadowInUse

    system = build_system()
    names = system.rebuilder.names if all_ else [name] if name else []
    if not names or any(n not in system.rebuilder.names for n in names):
        system.close()
        raise typer.BadParameter(f"name one of {', '.join(system.rebuilder.names)}, or --all")
    settle_heap()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(f"rebuilding {', '.join(names)}", total=system.goals.log_position())
            result = system.rebuilder.rebuild(
                names,
                restart=restart,
                progress=lambda at, end: bar.update(task, completed=at, total=end),
                jobs=jobs,
            )
    except ShadowInUse as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    finally:
        system.close()
    console.print(
        f"rebuilt {', '.join(result.names)}: {result.events} events in {result.seconds:.1f}s "
        f"({result.events_per_s:,.0f} events/s), now at position {result.position}"
    )


@projections_app.command("skip")
def projections_skip(
    name: Annotated[str, typer.Argument(help="The failed read model.")],
    position: Annotated[int, typer.Option(help="The log position it failed on.")],
    reason: Annotated[str, typer.Option(help="Why skipping is right (recorded in the log).")],
    actor: Annotated[str, typer.Option(help="Who decides.")] = "cli",
) -> None:
    """Let a failed read model pass over the one event it failed on; the decision is logged."""
    from application.operations import record_skip
    from projections.failures import NotSkippable

    system = build_system()
    try:
        system.runner.skip_check(name, position)
        recorded = record_skip(system.goals, name, position, reason, actor)
        system.runner.skip(name, position)
    except NotSkippable as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    finally:
        system.close()
    console.print(f"{name} skips position {position}; recorded at log position {recorded}")


@app.command()
def replay(
    agent: Annotated[str, typer.Option(help="Agent id.")],
    tenant: Annotated[str, typer.Option(help="Tenant.")] = "default",
    as_of: Annotated[
        str | None, typer.Option(help="RFC 3339 instant to replay up to, e.g. 2026-11-20T12:00:00Z.")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Aggregate version to replay up to.")] = None,
) -> None:
    """Print an agent's goals as they were, rebuilt from the log (the audit replay)."""
    from application.errors import GoalsNotFound
    from projections.views import view_from_aggregate

    instant = _instant(as_of) if as_of is not None else None
    system = build_system()
    try:
        goals = system.goals.goals_at(tenant, agent, version=version, as_of=instant)
    except GoalsNotFound as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    finally:
        system.close()
    typer.echo(json.dumps(view_from_aggregate(goals), indent=2))


@app.command()
def demo(
    tenant: Annotated[str, typer.Option(help="Tenant to load the fleet into.")] = "default",
    agents: Annotated[int, typer.Option(min=1, max=500, help="How many agents.")] = 12,
    weeks: Annotated[int, typer.Option(min=1, max=52, help="Weeks of progress history.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same fleet).")] = 7,
) -> None:
    """Load a realistic demo fleet: agents, goals and weeks of progress history."""
    from interfaces.cli.demo import load_demo

    system = build_system()
    try:
        summary = load_demo(system, tenant=tenant, agents=agents, weeks=weeks, seed=seed, console=console)
        system.runner.catch_up()
    finally:
        system.close()
    console.print(summary)


def _instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not an RFC 3339 instant", param_hint="--as-of") from None
    if instant.utcoffset() is None:
        raise typer.BadParameter(
            "must carry a time zone offset, e.g. 2026-11-20T12:00:00Z", param_hint="--as-of"
        )
    return instant


if __name__ == "__main__":
    app()
