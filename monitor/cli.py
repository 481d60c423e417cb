"""The command line: thin commands over the Monitor facade."""

from __future__ import annotations

import json
import logging
import signal
import sys
import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import click

from . import logs
from .config import FeedConfig, Paths
from .core import Monitor, load_config, make_monitor, score_lines
from .errors import AlreadyRunning, ConfigError, Interrupted, MonitorError
from .models import FeedResult


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--feeds", envvar="MONITOR_FEEDS", help="Feed list [default: feeds.yaml].")
@click.option("--keywords", envvar="MONITOR_KEYWORDS",
              help="Keyword rules [default: config/keywords.yaml].")
@click.option("--settings", envvar="MONITOR_SETTINGS",
              help="Settings [default: config/settings.yaml].")
@click.option("--db", envvar="MONITOR_DB", help="SQLite database [default: from settings].")
@click.option("-v", "--verbose", is_flag=True, help="Log every feed and page.")
@click.version_option(package_name="monitor")
@click.pass_context
def cli(ctx: click.Context, feeds: str | None, keywords: str | None, settings: str | None,
        db: str | None, verbose: bool) -> None:
    """Watch the news for surveillance technology built into cities and states."""
    ctx.obj = Paths.resolve(feeds, keywords, settings, db)
    logs.setup(logging.INFO if verbose else logging.WARNING)


def _open(ctx: click.Context, *, need_feeds: bool = True) -> Monitor:
    try:
        monitor = make_monitor(ctx.obj, need_feeds=need_feeds)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    if monitor.settings.log_format == "json":
        logs.setup(logging.getLogger("monitor").level, as_json=True)
    ctx.call_on_close(monitor.close)
    return monitor


def _run_poll(monitor: Monitor, feeds: int, allow_private: bool | None = None) -> str:
    if not sys.stderr.isatty():
        return monitor.poll_once(allow_private=allow_private).line()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("polling"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("", total=feeds)

        def advance(result: FeedResult) -> None:
            bar.update(task, advance=1, description=result.url[-50:])

        return monitor.poll_once(advance, allow_private=allow_private).line()


@cli.command()
@click.option("--once", is_flag=True, required=True, help="Run one cycle and exit.")
@click.pass_context
def poll(ctx: click.Context, once: bool) -> None:
    """Poll every enabled feed once: fetch, extract, score, store."""
    monitor = _open(ctx)
    try:
        click.echo(_run_poll(monitor, sum(1 for f in monitor.config.feeds if f.enabled)))
    except Interrupted:
        raise
    except MonitorError as exc:  # the database refused even the feed list: nothing ran
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)


@cli.command()
@click.option("--date", "day", callback=_date, help="Day (YYYY-MM-DD) in the configured "
              "time zone [default: today].")
@click.option("--since", callback=_date, help="Every day from this one (YYYY-MM-DD) to today.")
@click.option("--format", "fmt", type=click.Choice(["term", "text", "md", "html", "json", "atom"]),
              help="[default: term on a terminal, else text]")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option("--send", is_flag=True, help="Email it now, even if the day's digest was sent.")
@click.pass_context
def digest(ctx: click.Context, day: date | None, since: date | None, fmt: str | None,
           out: str | None, send: bool) -> None:
    """The flagged stories of a day (or since a day), copies grouped, highest score first."""
    if day and since:
        raise click.UsageError("give --date or --since, not both")
    monitor = _open(ctx, need_feeds=False)
    if send:
        try:
            to = monitor.send_digest(day or monitor.today())
        except MonitorError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        click.echo(f"digest sent to {to}", err=True)
        return
    fmt = fmt or ("term" if sys.stdout.isatty() and not out else "text")
    text = monitor.render_digest(day, fmt, since)
    if out:
        from .atomic import write_text

        write_text(Path(out), text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.pass_context
def score(ctx: click.Context, file) -> None:  # noqa: ANN001
    """Score JSON lines {id, title, text} from FILE (or stdin) without the network.

    Writes one JSON line {id, score, flagged, matches} per input line, in the same order."""
    try:
        config = load_config(ctx.obj, need_feeds=False)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    for line in score_lines(config.rules, file):
        click.echo(line)


@cli.command()
@click.argument("article")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def explain(ctx: click.Context, article: str, fmt: str) -> None:
    """Why ARTICLE (id or URL) scored as it did: every matched term and its contribution."""
    monitor = _open(ctx, need_feeds=False)
    row = monitor.explain(article)
    if row is None:
        click.echo(f"error: no article {article!r} in {monitor.database}", err=True)
        ctx.exit(1)
    s = row["explanation"]
    if fmt == "json":
        click.echo(json.dumps({"id": row["id"], "url": row["url"], "title": row["title"],
                               "score": s.score, "flagged": s.flagged, "reason": s.reason,
                               "matches": [m.as_dict() for m in s.matches], "tags": s.tags},
                              ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{row['title']}[/bold]\n{row['url']}", markup=True, highlight=False)
    console.print(f"score {s.score:.2f} · {'FLAGGED' if s.flagged else 'not flagged'} · "
                  f"{s.reason}", highlight=False)
    table = Table("term", "concept", "field", "count", "contribution")
    for m in s.matches:
        table.add_row(m.term, m.concept, m.field, str(m.count), f"{m.contribution:+.2f}")
    console.print(table)
    for kind, values in s.tags.items():
        console.print(f"{kind}: {', '.join(values)}", highlight=False)


@cli.command()
@click.option("--since", callback=_date, help="Only articles from this day on (YYYY-MM-DD).")
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.pass_context
def rescore(ctx: click.Context, since: date | None, dry_run: bool) -> None:
    """Apply the current keywords to stored articles."""
    monitor = _open(ctx, need_feeds=False)
    changes = monitor.rescore(since, dry_run=dry_run)
    for c in changes:
        verb = "enters" if c["now"] else "leaves"
        click.echo(f"{verb} the digest: [{c['id']}] {c['title']} ({c['score']:.1f}; {c['reason']})")
    click.echo(f"{len(changes)} stories {'would change' if dry_run else 'changed'}")


@cli.command("check-config")
@click.pass_context
def check_config(ctx: click.Context) -> None:
    """Validate feeds.yaml, keywords.yaml and settings.yaml; exit 0 or 2."""
    try:
        config = load_config(ctx.obj)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    click.echo(f"ok: {len(config.feeds)} feeds, {len(config.rules.concepts)} concepts, "
               f"{len(config.settings.alerts)} alert rules")


@cli.group()
def alerts() -> None:
    """Instant alerts (settings.yaml `alerts:`)."""


@alerts.command("test")
@click.pass_context
def alerts_test(ctx: click.Context) -> None:
    """Send a sample alert through every rule's every target and report each outcome."""
    monitor = _open(ctx.parent, need_feeds=False)
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
@click.option("--serve", is_flag=True, help="Also serve the reading room (see `serve`).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --serve: the address to listen on.")
@click.option("--port", default=8080, show_default=True, help="With --serve: the port.")
@click.pass_context
def run(ctx: click.Context, serve: bool, host: str, port: int) -> None:
    """Run as a service: poll each feed on its schedule, reload changed YAML, write the daily
    digest, send alerts; with --serve, the web pages too. Stops cleanly on SIGTERM or SIGINT."""
    from .service import Service

    logs.setup(logging.INFO)
    monitor = _open(ctx)
    try:
        web = (host, port, _web_password(ctx, host)) if serve else None
        Service(monitor, web=web).run()
    except AlreadyRunning as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)


def _web_password(ctx: click.Context, host: str) -> str | None:
    from .web import check_bind

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

    from .web import make_app

    password = _web_password(ctx, host)
    try:
        config = load_config(ctx.obj, need_feeds=False)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    database = Path(ctx.obj.db or config.settings.database)
    if not database.exists():  # serving must not create an empty archive
        click.echo(f"error: no database at {database}: poll first (`monitor poll --once`), "
                   "or name one with --db", err=True)
        ctx.exit(1)
    monitor = _open(ctx, need_feeds=False)
    logs.setup(logging.INFO)
    click.echo(f"serving http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    uvicorn.run(make_app(monitor, password, host), host=host, port=port, log_level="warning",
                server_header=False)


@cli.command()
@click.pass_context
def compact(ctx: click.Context) -> None:
    """Apply `retention_days` now, then give the freed space back (VACUUM). It takes the
    service's lock: it refuses while `monitor run` is running on the same database."""
    from .service import Lock

    monitor = _open(ctx, need_feeds=False)
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


@cli.group()
def labels() -> None:
    """Your judgements of stories (made on the web pages)."""


@labels.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
@click.pass_context
def labels_export(ctx: click.Context, out: str | None) -> None:
    """JSON lines {id, title, text, label} (1 relevant, 0 not) for scripts/eval_relevance.py."""
    monitor = _open(ctx.parent, need_feeds=False)
    lines = [line + "\n" for line in monitor.export_labels()]
    if out:
        from .atomic import write_text

        write_text(Path(out), "".join(lines))
        click.echo(f"{len(lines)} labels written to {out}", err=True)
    else:
        click.echo("".join(lines), nl=False)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Feed health: last success, last error, failures, next poll, recent articles, 304s."""
    monitor = _open(ctx, need_feeds=False)
    rows = monitor.feed_status()
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    waiting = sum(r["pages_waiting"] for r in rows)
    columns = ["feed", "state", "last success", "failures", "last error", "next poll",
               "articles 7d", "304s"] + (["to retry"] if waiting else [])
    table = Table(*columns)
    for r in rows:
        table.add_row(r["name"] or r["url"], r["state"], _ago(r["last_success_at"]),
                      str(r["consecutive_failures"]), (r["last_error"] or "")[:60],
                      _ago(r["next_poll_at"]), str(r["articles_7d"]),
                      f"{r['not_modified_share']:.0%}",
                      *([str(r["pages_waiting"])] if waiting else []))
    console = Console()
    console.print(table)
    console.print(f"{waiting} pages waiting for a retry" if waiting
                  else "no page waiting for a retry")


def _ago(value: str | None) -> str:
    return value.replace("T", " ").removesuffix("+00:00") if value else "-"


@cli.group()
def feeds() -> None:
    """List, add, remove, check, import and export feeds (edits feeds.yaml in place)."""


@feeds.command("list")
@click.pass_context
def feeds_list(ctx: click.Context) -> None:
    """The configured feeds and their state."""
    monitor = _open(ctx.parent, need_feeds=True)
    state = {r["url"]: r for r in monitor.feed_status()}
    for f in monitor.config.feeds:
        r = state.get(f.url, {})
        flag = "" if f.enabled else " (disabled)"
        click.echo(f"{f.name}{flag}\t{f.url}\t{r.get('state', 'not polled yet')}")


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name [default: the feed's own title].")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.pass_context
def feeds_add(ctx: click.Context, url: str, name: str | None, tags: tuple[str, ...]) -> None:
    """Add URL to feeds.yaml, keeping its comments and order."""
    from . import feedlist

    paths: Paths = ctx.parent.obj
    if name is None:
        name = _feed_title(ctx.parent, url)
    try:
        added = feedlist.add(paths.feeds, [FeedConfig(url=url, name=name, tags=list(tags))])
    except (ConfigError, ValueError) as exc:
        click.echo(f"error: {_short_error(exc)}", err=True)
        ctx.exit(2)
    click.echo(f"added {url} as {name!r}" if added else f"{url} is already in {paths.feeds}")


@feeds.command("remove")
@click.argument("url")
@click.pass_context
def feeds_remove(ctx: click.Context, url: str) -> None:
    """Remove URL from feeds.yaml (its stored articles stay)."""
    from . import feedlist

    paths: Paths = ctx.parent.obj
    try:
        removed = feedlist.remove(paths.feeds, url)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    if not removed:
        click.echo(f"error: {url} is not in {paths.feeds}", err=True)
        ctx.exit(1)
    click.echo(f"removed {url}")


@feeds.command("enable")
@click.argument("url")
@click.pass_context
def feeds_enable(ctx: click.Context, url: str) -> None:
    """Poll a feed again after it answered 410 Gone."""
    monitor = _open(ctx.parent, need_feeds=False)
    if not monitor.revive_feed(url):
        click.echo(f"error: {url} is not in the database", err=True)
        ctx.exit(1)
    click.echo(f"{url} will be polled again")


@feeds.command("check")
@click.argument("url")
@click.pass_context
def feeds_check(ctx: click.Context, url: str) -> None:
    """Fetch URL: is it a feed, how many entries, what its first entry's page extracts to."""
    monitor = _open(ctx.parent, need_feeds=False)
    report = monitor.check_feed(url)
    for line in report.lines:
        click.echo(line)
    if not report.ok:
        ctx.exit(1)


@feeds.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def feeds_import(ctx: click.Context, file: Path) -> None:
    """Add the feeds of an OPML file to feeds.yaml."""
    from . import feedlist

    paths: Paths = ctx.parent.obj
    try:
        found = feedlist.read_opml(file)
        added = feedlist.add(paths.feeds, found)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    click.echo(f"{len(added)} feeds added, {len(found) - len(added)} already listed")


@feeds.command("export")
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """The configured feeds as OPML on stdout."""
    from . import feedlist

    try:
        config = load_config(ctx.parent.obj)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    click.echo(feedlist.write_opml(config.feeds), nl=False)


def _short_error(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
    return str(exc)


def _feed_title(ctx: click.Context, url: str) -> str:
    from urllib.parse import urlsplit

    try:
        monitor = make_monitor(ctx.obj, need_feeds=False)
    except MonitorError:
        return urlsplit(url).hostname or url
    try:
        return monitor.feed_title(url) or urlsplit(url).hostname or url
    finally:
        monitor.close()


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["term", "text", "md", "html", "json", "atom"]),
              help="[default: term on a terminal, else text]")
@click.pass_context
def demo(ctx: click.Context, fmt: str | None) -> None:
    """Run the whole job offline against sample feeds served on 127.0.0.1."""
    from .demo import DemoServer

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
            monitor.reload(replace(monitor.config, feeds=[
                FeedConfig(url=url, name=name) for name, url in server.feed_urls]))
            click.echo(f"demo: serving {len(server.feed_urls)} sample feeds on {server.base}",
                       err=True)
            click.echo("demo: " + _run_poll(monitor, len(server.feed_urls), allow_private=True),
                       err=True)
            click.echo("demo: second poll (nothing changed): "
                       + monitor.poll_once(allow_private=True).line(), err=True)
            fmt = fmt or ("term" if sys.stdout.isatty() else "text")
            click.echo(monitor.render_digest(monitor.today(), fmt), nl=False)
        finally:
            monitor.close()


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def main() -> None:
    """SIGTERM and SIGINT end any command cleanly: an exception that rolls back the write in
    progress and closes the database, then exit code 128 + the signal (143, 130). The
    service handles both itself and exits 0."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    try:
        cli(prog_name="monitor")
    except Interrupted as exc:
        click.echo(f"monitor: {exc}; nothing half-written", err=True)
        sys.exit(exc.exit_code)
