"""The command group, its global options, and what every command shares: opening the
Monitor with a clear error, reading a day, polling with a progress bar."""

from __future__ import annotations

import logging
import sys
from datetime import date, timedelta

import click

from .. import logs
from ..config import Paths
from ..core import Config, Monitor, load_config, make_monitor
from ..errors import ConfigError, MonitorError
from ..models import FeedResult

RELATIVE_DAYS = {"today": 0, "yesterday": 1}  # days before today, in the configured time zone
Day = date | int  # a date, or how many days before today (known once the settings are read)


def parse_day(ctx: click.Context, param: click.Parameter, value: str | None) -> Day | None:
    if value is None:
        return None
    if value.strip().lower() in RELATIVE_DAYS:
        return RELATIVE_DAYS[value.strip().lower()]
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD, today or "
                                 "yesterday)") from None


def configuration(ctx: click.Context, *, need_feeds: bool = True) -> Config:
    """The validated configuration, or its error and exit code 2."""
    try:
        return load_config(ctx.obj, need_feeds=need_feeds)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)


def day_of(monitor: Monitor, value: Day | None) -> date | None:
    """A parsed day as a date: today and yesterday in the configured time zone."""
    if isinstance(value, int):
        return monitor.today() - timedelta(days=value)
    return value



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



def open_monitor(ctx: click.Context, *, need_feeds: bool = True) -> Monitor:
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



def run_poll(monitor: Monitor, feeds: int, allow_private: bool | None = None) -> str:
    if not sys.stderr.isatty():
        return monitor.poll_once(allow_private=allow_private).line()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("polling"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.description}"), transient=True) as bar:
        task = bar.add_task("", total=feeds)

        def advance(result: FeedResult) -> None:
            bar.update(task, advance=1, description=result.url[-50:])

        return monitor.poll_once(advance, allow_private=allow_private).line()

