"""When to fetch a failed page again. Pure: the pipeline stores what this returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from .errors import FetchError, MonitorError


def retry_at(error: MonitorError, now: datetime, tries: int,
             delays: Sequence[float]) -> datetime | None:
    """The time of the next try after *tries* failed ones (the first fetch counts), or None when
    the failure is permanent (404, 410, not an article, too large, refused) or the schedule is
    spent. A Retry-After asking for longer than the schedule wins."""
    if not isinstance(error, FetchError) or not error.transient or tries > len(delays):
        return None
    delay = delays[tries - 1]
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return now + timedelta(seconds=delay)
