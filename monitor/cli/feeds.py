"""The feed list (feeds.yaml) and each feed's health."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..config import FeedConfig, Paths
from ..errors import ConfigError
from .base import cli, configuration, open_monitor


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Feed health: last success, last error, failures, next poll, recent articles, 304s."""
    monitor = open_monitor(ctx, need_feeds=False)
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
    # piped or redirected, the table keeps every column at its width (rich would squeeze it
    # into 80 columns): a file has no width
    console = Console() if sys.stdout.isatty() else Console(width=10_000)
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
    monitor = open_monitor(ctx.find_root(), need_feeds=True)
    state = {r["url"]: r for r in monitor.feed_status()}
    for f in monitor.feeds:
        r = state.get(f.url, {})
        flag = "" if f.enabled else " (disabled)"
        click.echo(f"{f.name}{flag}\t{f.url}\t{r.get('state', 'not polled yet')}")


@feeds.command("add")
@click.argument("url")
@click.option("--name", help="Display name [default: the feed's own title].")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--no-check", is_flag=True, help="Add URL as it is, without fetching it first.")
@click.pass_context
def feeds_add(ctx: click.Context, url: str, name: str | None, tags: tuple[str, ...],
              no_check: bool) -> None:
    """Add URL to feeds.yaml, keeping its comments and order. It is fetched first: a web page
    that names its feed adds that feed; one that is not a feed, or does not answer, is not
    added (unless --no-check)."""
    from urllib.parse import urlsplit

    from .. import feedlist

    paths: Paths = ctx.obj
    try:
        FeedConfig(url=url, name=name or url, tags=list(tags))  # a bad URL or tag, before any fetch
    except (ConfigError, ValueError) as exc:
        click.echo(f"error: {_short_error(exc)}", err=True)
        ctx.exit(2)
    if not no_check:
        monitor = open_monitor(ctx.find_root(), need_feeds=False)
        report = monitor.check_feed(url, first_page=False)
        for line in report.lines:
            click.echo(line, err=True)
        if not report.ok:
            click.echo(f"not added: {url} is not a usable feed (--no-check adds it anyway)",
                       err=True)
            ctx.exit(1)
        url, name = report.url or url, name or report.title
    name = name or urlsplit(url).hostname or url
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
    from .. import feedlist

    paths: Paths = ctx.obj
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
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
    if not monitor.revive_feed(url):
        click.echo(f"error: {url} is not in the database", err=True)
        ctx.exit(1)
    click.echo(f"{url} will be polled again")


@feeds.command("check")
@click.argument("url")
@click.pass_context
def feeds_check(ctx: click.Context, url: str) -> None:
    """Fetch URL: is it a feed, how many entries, what its first entry's page extracts to."""
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
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
    from .. import feedlist

    paths: Paths = ctx.obj
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
    from .. import feedlist

    config = configuration(ctx)
    click.echo(feedlist.write_opml(config.feeds), nl=False)


def _short_error(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        e = exc.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
    return str(exc)
