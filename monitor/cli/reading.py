"""Reading and judging: the digest, scores and explanations, rescoring, labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import MonitorError
from ..scoring.explain import feature_words, in_plain_words
from ..scoring.lines import score_lines
from .base import Day, cli, configuration, day_of, open_monitor, parse_day


@cli.command()
@click.option("--date", "day", callback=parse_day, help="Day (YYYY-MM-DD, today or yesterday) "
              "in the configured time zone [default: today].")
@click.option("--since", callback=parse_day, help="Every day from this one (YYYY-MM-DD or "
              "yesterday) to today.")
@click.option("--format", "fmt", type=click.Choice(["term", "text", "md", "html", "json", "atom"]),
              help="[default: term on a terminal, else text]")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option("--send", is_flag=True, help="Email it now, even if the day's digest was sent.")
@click.pass_context
def digest(ctx: click.Context, day: Day | None, since: Day | None, fmt: str | None,
           out: str | None, send: bool) -> None:
    """The flagged stories of a day (or since a day), copies grouped, highest score first."""
    if day is not None and since is not None:
        raise click.UsageError("give --date or --since, not both")
    monitor = open_monitor(ctx, need_feeds=False)
    day, since = day_of(monitor, day), day_of(monitor, since)
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
        from ..atomic import write_text

        write_text(Path(out), text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.pass_context
def score(ctx: click.Context, file) -> None:  # noqa: ANN001
    """Score JSON lines {id, title, text} from FILE (or stdin) without the network.

    Writes one JSON line {id, score, flagged, matches} per input line, in the same order.
    With --db, what was learned from that database's labels takes part, as when polling."""
    rules = open_monitor(ctx, need_feeds=False).rules if ctx.obj.db else \
        configuration(ctx, need_feeds=False).rules
    for line in score_lines(rules, file):
        click.echo(line)


@cli.command()
@click.argument("article")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def explain(ctx: click.Context, article: str, fmt: str) -> None:
    """Why ARTICLE (id or URL) scored as it did: every matched term and its contribution."""
    monitor = open_monitor(ctx, need_feeds=False)
    row = monitor.explain(article)
    if row is None:
        click.echo(f"error: no article {article!r} in {monitor.database}", err=True)
        ctx.exit(1)
    s = row["explanation"]
    if fmt == "json":
        click.echo(json.dumps({"id": row["id"], "url": row["url"], "title": row["title"],
                               "score": s.score, "flagged": s.flagged, "reason": s.reason,
                               "matches": [m.as_dict() for m in s.matches], "tags": s.tags,
                               "rules_flagged": s.rules_flagged, "learned": s.learned,
                               "learned_terms": [list(t) for t in s.learned_terms]},
                              ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{row['title']}[/bold]\n{row['url']}", markup=True, highlight=False)
    console.print(f"score {s.score:.2f} · {'FLAGGED' if s.flagged else 'not flagged'} · "
                  f"{in_plain_words(s, monitor.rules)}", highlight=False)
    table = Table("term", "concept", "field", "count", "contribution")
    for m in s.matches:
        table.add_row(m.term, m.concept, m.field, str(m.count), f"{m.contribution:+.2f}")
    console.print(table)
    for kind, values in s.tags.items():
        console.print(f"{kind}: {', '.join(values)}", highlight=False)
    if s.learned is not None:
        learned = Table("learned from the labels", "adds to the log-odds")
        for name, part in s.learned_terms:
            learned.add_row(feature_words(name), f"{part:+.2f}")
        console.print(learned)


@cli.command()
@click.option("--since", callback=parse_day, help="Only articles from this day on (YYYY-MM-DD, "
              "today or yesterday).")
@click.option("--dry-run", is_flag=True, help="List what would change; change nothing.")
@click.pass_context
def rescore(ctx: click.Context, since: Day | None, dry_run: bool) -> None:
    """Apply the current keywords to stored articles."""
    monitor = open_monitor(ctx, need_feeds=False)
    changes = monitor.rescore(day_of(monitor, since), dry_run=dry_run)
    for c in changes:
        verb = "enters" if c["now"] else "leaves"
        click.echo(f"{verb} the digest: [{c['id']}] {c['title']} ({c['score']:.1f}; {c['reason']})")
    click.echo(f"{len(changes)} stories {'would change' if dry_run else 'changed'}")


@cli.group()
def labels() -> None:
    """Your judgements of stories (made on the web pages)."""


@labels.command("export")
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
@click.pass_context
def labels_export(ctx: click.Context, out: str | None) -> None:
    """JSON lines {id, title, text, label} (1 relevant, 0 not) for scripts/eval_relevance.py."""
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
    lines = [line + "\n" for line in monitor.export_labels()]
    if out:
        from ..atomic import write_text

        write_text(Path(out), "".join(lines))
        click.echo(f"{len(lines)} labels written to {out}", err=True)
    else:
        click.echo("".join(lines), nl=False)



@labels.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.pass_context
def labels_import(ctx: click.Context, file) -> None:  # noqa: ANN001
    """Labelled examples from JSON lines {id, title, text, label, url?} (what `labels export`
    writes; label 1 or 0, or relevant or not_relevant), kept beside the reading room's
    labels. Importing a file again updates its examples by id. Bad lines are named and
    skipped."""
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
    added, updated, errors = monitor.import_labels(file, file.name)
    for error in errors:
        click.echo(error, err=True)
    click.echo(f"{added} examples added, {updated} updated"
               + (f", {len(errors)} lines skipped" if errors else ""))
    if errors and not added + updated:
        ctx.exit(1)


@labels.command("suggest")
@click.option("--limit", type=click.IntRange(1, 50), default=8, show_default=True)
@click.pass_context
def labels_suggest(ctx: click.Context, limit: int) -> None:
    """Edits to config/keywords.yaml that the labels argue for: terms the rules miss in
    stories labelled relevant, terms of false alarms for a negative concept, a threshold.
    Each with what it does to the labels and to the stored articles (by the rules alone,
    as `rescore --dry-run` counts). Nothing is changed: make the edit, then `rescore`."""
    monitor = open_monitor(ctx.find_root(), need_feeds=False)
    base, suggestions = monitor.suggest_edits(limit)
    if not base.labels:
        click.echo("no labels yet: label stories in the reading room or `labels import`")
        return
    click.echo(f"the rules on {base.labels} labels: {_quality(base)}")
    if not suggestions:
        click.echo("no edit of one term or the threshold does better on these labels")
    for i, s in enumerate(suggestions, 1):
        near = "holding it" if s.edit.term else "near the line"
        of = f"of {s.touched} {near}" if s.scored == s.touched else \
            f"of the newest {s.scored} of {s.touched} {near}"
        click.echo(f"{i}. {s.edit.what}\n   labels: {_quality(s.edit.after)}\n   stored "
                   f"articles: {s.flagged} more flagged, {s.unflagged} fewer ({of})")


def _quality(q: Any) -> str:
    return (f"precision {q.precision:.3f} recall {q.recall:.3f} F1 {q.f1:.3f} ({q.found} "
            f"found, {q.false_alarms} false alarms, {q.missed} missed)")


@cli.command()
@click.pass_context
def learn(ctx: click.Context) -> None:
    """Learn from every label (the reading room's and the imported): prints the strongest
    terms each way and the cross-validated precision, recall and F1 of what was learned
    against the rules alone on the same labels, and keeps the model in the database. It
    decides what is flagged once it came from 20 labels of each kind and did better than
    the rules on them (and `learning` is on)."""
    monitor = open_monitor(ctx, need_feeds=False)
    try:
        model = monitor.learn()
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    counts = model["labels"]
    click.echo(f"learned from {counts['relevant'] + counts['not_relevant']} labels "
               f"({counts['relevant']} relevant, {counts['not_relevant']} not); model "
               f"{model['id']} kept in the database")
    check = model["cross_validated"]
    if check:
        for who in ("rules", "learned"):
            q = check[who]
            click.echo(f"  {who:8} precision {q['precision']:.3f} recall {q['recall']:.3f} "
                       f"F1 {q['f1']:.3f}  ({check['folds']}-fold cross-validation)")
    for kind in ("relevant", "not_relevant"):
        click.echo(f"  towards {kind.replace('_', ' ')}: "
                   + ", ".join(model["strongest"][kind][:10]))
    from ..learning import trusted

    click.echo("it decides what is flagged from now on" if trusted(model) and
               monitor.settings.learning else
               "the keyword rules alone still decide: " + (
                   "learning is off in settings" if not monitor.settings.learning else
                   "it needs 20 labels of each kind and to do better than the rules on "
                   "them"))
