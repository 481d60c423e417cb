"""When to poll a feed next. Pure: the service and `poll --once` store what this returns."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from .models import FeedResult

MIN_RETRY = 1.0  # seconds; even a zero Retry-After waits this long
_RNG = random.Random()  # one, seeded once: seeding reads the OS's entropy


def next_poll_at(result: FeedResult, now: datetime, interval: float, *, failures: int,
                 jitter: float, max_backoff: float, retry_after: float | None = None,
                 rng: random.Random | None = None) -> datetime | None:
    """The next poll time after *result*; None for a feed that is gone (410).

    *failures* counts consecutive failures including this one. Success: the interval plus up to
    ``jitter`` of it. Failure: the interval doubled per consecutive failure, capped at
    *max_backoff*, and never sooner than the server's Retry-After (itself capped).
    """
    if result.status == "gone":
        return None
    rng = rng or _RNG
    if result.status != "failed":
        delay = interval * (1 + jitter * rng.random())
    else:
        delay = min(interval * 2 ** max(failures - 1, 0), max_backoff)
        if retry_after is not None:
            delay = max(delay, min(max(retry_after, MIN_RETRY), max_backoff))
        delay *= 1 + jitter * rng.random() / 2
    return now + timedelta(seconds=min(delay, max_backoff * 1.5))
