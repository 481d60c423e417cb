"""Running the monitor: one poll, the service, the reading room, the demo, upkeep."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import click

from .. import logs
from ..config import FeedConfig, Paths
from ..core import make_monitor
from ..errors import AlreadyRunning, ConfigError, Interrupted, MonitorError
from .base import cli, configuration, open_monitor, run_poll


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit.")
@click.pass_context
def poll(ctx: click.Context, once: bool) -> None:
    """Poll every enabled feed once: fetch, extract, score, store."""
    monitor = open_monitor(ctx)
    try:
        click.echo(run_poll(monitor, len(monitor.enabled_feeds())))
    except Interrupted:
        raise
    except MonitorError as exc:  # the database refused even the feed list: nothing ran
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)


@cli.command()
@click.option("--serve", is_flag=True, help="Also serve the reading room (see `serve`).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --serve: the address to listen on.")
@click.option("--port", default=8080, show_default=True, help="With --serve: the port.")
@click.pass_context
def run(ctx: click.Context, serve: bool, host: str, port: int) -> None:
    """Run as a service: poll each feed on its schedule, reload changed YAML, write the daily
    digest, send alerts; with --serve, the web pages too. Stops cleanly on SIGTERM or SIGINT."""
    from ..service import Service

    logs.setup(logging.INFO)
    monitor = open_monitor(ctx)
    try:
        web = (host, port, _web_password(ctx, host)) if serve else None
        Service(monitor, web=web).run()
    except AlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)


def _web_password(ctx: click.Context, host: str) -> str | None:
    from ..web.security import check_bind

    try:
        return check_bind(host)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; any but loopback needs MONITOR_WEB_PASSWORD.")
@click.option("--port", default=8080, show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int) -> None:
    """The reading room in a browser: the day's digest, stories, search, feeds, labels."""
    import uvicorn

    from ..web import make_app

    password = _web_password(ctx, host)
    config = configuration(ctx, need_feeds=False)
    database = Path(ctx.obj.db or config.settings.database)
    if not database.exists():  # serving must not create an empty archive
        click.echo(f"error: no database at {database}: poll first (`monitor poll --once`), "
                   "or name one with --db", err=True)
        ctx.exit(1)
    monitor = open_monitor(ctx, need_feeds=False)
    logs.setup(logging.INFO)
    click.echo(f"serving http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    uvicorn.run(make_app(monitor, password, host), host=host, port=port, log_level="warning",
                server_header=False)


@cli.command()
@click.pass_context
def compact(ctx: click.Context) -> None:
    """Apply `retention_days` now, then give the freed space back (VACUUM). It takes the
    service's lock: it refuses while `monitor run` is running on the same database."""
    from ..service import Lock

    monitor = open_monitor(ctx, need_feeds=False)
    lock = Lock(monitor.database)
    try:
        lock.acquire()
        try:
            dropped, freed = monitor.compact()
        finally:
            lock.release()
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    click.echo(f"text of {dropped} articles dropped; {max(freed, 0) / 2**20:.1f} MiB given back")


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate feeds.yaml, keywords.yaml and settings.yaml; exit 0 or 2."""
    config = configuration(ctx)
    click.echo(f"ok: {len(config.feeds)} feeds, {len(config.rules.concepts)} concepts, "
               f"{len(config.settings.alerts)} alert rules")


@cli.group()
def alerts() -> None:
    """Instant alerts (settings.yaml `alerts:`)."""


@alerts.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> None:
    """Send a sample alert through every rule's every target and report each outcome."""
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
    if not monitor.settings.alerts:
        click.echo("no alert rules in the settings (`alerts:`)", err=True)
        ctx.exit(1)
    failed = 0
    for rule, target, error in monitor.test_alerts():
        click.echo(f"{rule}: {target}: {'ok' if error is None else 'failed: ' + error}")
        failed += error is not None
    if failed:
        ctx.exit(1)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["term", "text", "md", "html", "json", "atom"]),
              help="[default: term on a terminal, else text]")
@click.option("--serve", is_flag=True, help="Then open the demo's archive in the reading room "
              "on 127.0.0.1 (Ctrl-C to stop).")
@click.option("--port", default=8080, show_default=True, help="With --serve: the port.")
@click.pass_context
def demo(ctx: click.Context, fmt: str | None, serve: bool, port: int) -> None:
    """Run the whole job offline against sample feeds served on 127.0.0.1."""
    from ..demo import DemoServer

    paths: Paths = ctx.obj
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as tmp, DemoServer() as server:
        db = paths.db or Path(tmp) / "demo.db"
        demo_paths = Paths(feeds=Path(tmp) / "none.yaml", keywords=paths.keywords,
                           settings=paths.settings, db=db)
        try:
            monitor = make_monitor(demo_paths, need_feeds=False)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        try:
            monitor.use_feeds([FeedConfig(url=url, name=name)
                               for name, url in server.feed_urls])
            click.echo(f"demo: serving {len(server.feed_urls)} sample feeds on {server.base}",
                       err=True)
            click.echo("demo: " + run_poll(monitor, len(server.feed_urls), allow_private=True),
                       err=True)
            click.echo("demo: second poll (nothing changed): "
                       + monitor.poll_once(allow_private=True).line(), err=True)
            fmt = fmt or ("term" if sys.stdout.isatty() else "text")
            click.echo(monitor.render_digest(monitor.today(), fmt), nl=False)
            if serve:
                import uvicorn

                from ..web import make_app

                click.echo(f"demo: the reading room at http://127.0.0.1:{port}/ (Ctrl-C to "
                           "stop)", err=True)
                uvicorn.run(make_app(monitor), host="127.0.0.1", port=port,
                            log_level="warning", server_header=False)
            else:
                keep = f"--db {paths.db} " if paths.db else "--db demo.db "
                click.echo("demo: to read it in a browser, `monitor demo --serve`; to keep "
                           f"the archive, `monitor {keep}demo`, then `monitor {keep}serve`",
                           err=True)
        finally:
            monitor.close()

