"""Alerts against the archive: each rule's new stories planned into the store, the messages
due delivered. What to send is decided by the pure functions of alerts.py; this module only
reads and writes through the store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from . import alerts
from .config import AlertRule
from .store import Store

LEASE = timedelta(minutes=10)  # a claimed alert is another process's after this
# how far before the newest story a rule considered it looks again: a poll stores its articles
# dated when it began, up to its deadline later; a rescore dates them when it began
CONSIDER_MARGIN = timedelta(hours=1)


def begin_rules(store: Store, rules: list[AlertRule], now: datetime) -> None:
    """Note when each alert rule began, before polling: it alerts on what is flagged from
    then on (a rule added to an old archive does not alert on a year of stories)."""
    for i, rule in enumerate(rules):
        store.begin_alert_rule(alerts.rule_name(rule, i), now)


def send_alerts(store: Store, rules: list[AlertRule], now: datetime) -> tuple[int, int]:
    """Consider, for every rule, the stories flagged since it last looked; send those
    waiting as the hour allows; deliver the messages due (new ones, and failed ones whose
    next try has come). Blocking. Returns (sent, failed) deliveries."""
    by_name = {alerts.rule_name(r, i): r for i, r in enumerate(rules)}
    for name, rule in by_name.items():
        plan(store, name, rule, now)
    sent = failed = 0
    for row in store.claim_due_alerts(now, LEASE):
        owner = by_name.get(row["rule"])
        if owner is None:
            store.alert_tried(row["id"], [], "rule no longer configured", now, None, False)
            continue
        done = set(json.loads(row["delivered"] or "[]"))
        delivered, errors = alerts.deliver(owner.urls, row["title"], row["body"], done)
        error = "; ".join(errors) or None
        retry = alerts.next_try(row["attempts"] + 1, now) if error else None
        store.alert_tried(row["id"], delivered, error, now, retry, not error)
        if error:
            failed += 1
            alerts.log.warning("alert not delivered", extra={"outcome": (
                f"{row['rule']}: {row['title'][:80]}: {error}; "
                + (f"next try at {retry:%H:%M:%S}" if retry else "given up"))})
        else:
            sent += 1
    return sent, failed


def plan(store: Store, name: str, rule: AlertRule, now: datetime) -> None:
    """One rule's new stories recorded and its waiting ones released, in one transaction
    (two processes never plan the same story twice). Reads only: the write lock is taken
    when there is something new or something the hour has room for."""
    began = store.alert_rule(name)
    if began is None:  # a rule added since the last reload, or a new database
        store.begin_alert_rule(name, now)
        began = store.alert_rule(name)
        assert began is not None
    since, considered = began
    if considered:  # with a margin: a poll stores its articles dated when it began
        since = max(since, _minus(considered, CONSIDER_MARGIN))
    hour_ago = now - timedelta(hours=1)
    room = store.alert_messages_since(name, hour_ago) < rule.max_per_hour
    if not store.alert_candidates(name, since) and not (room and store.waiting_alerts(name)):
        return
    with store.transaction():
        candidates = store.alert_candidates(name, since)
        if candidates:
            store.add_alerts(name, alerts.consider(rule, candidates), now)
            store.considered(name, max(c["flagged_at"] for c in candidates))
        alone, summarised, summary = alerts.release(
            rule, name, store.waiting_alerts(name), store.alert_messages_since(name, hour_ago))
        store.release_alerts(name, alone, summarised, summary, now)


def test_alerts(rules: list[AlertRule]) -> list[tuple[str, str, str | None]]:
    """A sample through every rule's every target: (rule, target, error or None)."""
    sample = {"id": 0, "story": 0, "title": "monitor: a test alert", "score": 12.0,
              "url": "https://example.org/monitor-test", "feed_url": "", "feed_name":
              "monitor alerts test", "tags": {"technology": ["facial recognition"]},
              "matches": [{"term": "facial recognition", "contribution": 6.0}],
              "text": "This is a test of the alert rules in config/settings.yaml. "
                      "Nothing was flagged."}
    title, body = alerts.story_message(sample)
    out = []
    for i, rule in enumerate(rules):
        for n, url in enumerate(rule.urls):
            _, errors = alerts.deliver([url], title, body, set())
            out.append((alerts.rule_name(rule, i), f"target {n + 1} ({url.split('://')[0]})",
                        errors[0] if errors else None))
    return out


def _minus(stamp: str, delta: timedelta) -> str:
    return (datetime.fromisoformat(stamp) - delta).isoformat(timespec="seconds")
