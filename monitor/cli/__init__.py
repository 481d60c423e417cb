"""The command line: thin commands over the Monitor facade, a module per group of commands
(reading, service, feeds); base holds the group and what they share."""

from __future__ import annotations

import signal
import sys

import click

from ..errors import Interrupted
from . import feeds, reading, service  # noqa: F401  (each registers its commands)
from .base import cli

__all__ = ["cli", "main"]


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

