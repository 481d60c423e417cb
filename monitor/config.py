"""Configuration: feeds.yaml, config/settings.yaml and config/keywords.yaml.

Every setting is declared once, in :class:`Settings`, with its default and its help text; the
YAML files override defaults key by key. Validation errors name file:line and key path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import yamlfile
from .errors import ConfigError

PACKAGED_KEYWORDS = Path(__file__).parent / "defaults" / "keywords.yaml"
try:
    _VERSION = version("monitor")
except PackageNotFoundError:  # run from a checkout without installing
    _VERSION = "0"
DEFAULT_USER_AGENT = (f"monitor/{_VERSION} (news monitor for surveillance-technology "
                      "research)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """30 -> 30.0 seconds; '90s', '15m', '2h', '1d' -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '15m', '2h'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (
            m := re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError("expected a duration such as 30, '15m', '2h'")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def _http_url(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not an http(s) URL")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    return value.strip()


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return str(value)


def _clock(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        raise ValueError("expected a time of day as 'HH:MM' (quoted)")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
TimeZone = Annotated[str, BeforeValidator(_timezone)]
Clock = Annotated[str, BeforeValidator(_clock)]
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class FeedConfig(BaseModel):
    model_config = _STRICT
    url: HttpUrl
    name: str = Field(min_length=1)
    tags: list[str] = []
    language: str | None = None
    interval: Duration | None = Field(None, description="overrides settings.default_interval")
    enabled: bool = True


class FeedsFile(BaseModel):
    model_config = _STRICT
    feeds: list[FeedConfig] = []


class EmailSettings(BaseModel):
    model_config = _STRICT
    host: str | None = Field(None, description="SMTP server; no host means no email")
    port: int = Field(587, description="SMTP port")
    tls: Literal["starttls", "ssl", "none"] = Field("starttls", description="how to secure SMTP")
    user: str | None = Field(None, description="SMTP login; the password is read from "
                             "the environment variable MONITOR_SMTP_PASSWORD")
    sender: str | None = Field(None, alias="from", description="From: address")
    to: list[str] = Field([], description="recipients")


RESTART_SETTINGS = frozenset({"database"})  # a running service applies every other one live


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(url: str) -> str:
    """${NAME} replaced by the environment variable NAME: secrets stay out of YAML."""
    def value(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise ValueError(f"environment variable {m.group(1)} is not set")
        return os.environ[m.group(1)]
    return _ENV_REF.sub(value, url)


def _notification_url(value: Any) -> str:
    if not isinstance(value, str) or "://" not in value:
        raise ValueError("expected an Apprise URL such as 'json://host/path' or "
                         "'mailto://user:${MONITOR_SMTP_PASSWORD}@host?to=a@example.org'")
    import apprise  # only when alerts are configured: it takes a fifth of a second

    if not apprise.Apprise().add(expand_env(value)):
        raise ValueError(f"not a notification URL Apprise knows: {value.split('://')[0]}://…")
    return value  # kept with its ${NAME}s: expanded again when sending


class AlertRule(BaseModel):
    model_config = _STRICT
    name: str | None = Field(None, description="how logs and the alerts table call it "
                             "(default: rule N)")
    urls: list[Annotated[str, BeforeValidator(_notification_url)]] = Field(
        min_length=1, description="notification targets as Apprise URLs; ${NAME} takes a "
        "secret from the environment")
    min_score: float = Field(0.0, ge=0, description="flagged stories scoring at least this")
    tags: list[str] = Field([], description="only stories tagged with one of these "
                            "(vendor, technology, place or programme names)")
    feeds: list[str] = Field([], description="only stories from these feeds (URL or name)")
    max_per_hour: int = Field(10, ge=1, le=1000, description="messages in any hour, summaries "
                              "included; past it, stories wait for the next message allowed")


class Settings(BaseModel):
    """Every setting, its default and what it does. config/settings.yaml overrides any of them."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)
    database: str = Field("monitor.db",
                          description="SQLite file (relative to the current directory)")
    timezone: TimeZone = Field("UTC", description="time zone of the digest's day")
    user_agent: str = Field(
        default_factory=lambda: DEFAULT_USER_AGENT, min_length=1,
        description="User-Agent sent with every request; name yourself and a contact URL "
        "or address, e.g. 'monitor/0.1 (+https://example.org/contact)'")
    default_interval: Duration = Field(3600.0, description="seconds between polls of a feed "
                                       "(or '30m', '2h'); a feed's own interval wins")
    jitter: float = Field(0.1, ge=0, le=0.5, description="random share of the interval added to "
                          "each poll time, so feeds do not poll in lockstep")
    connect_timeout: Duration = Field(10.0, description="seconds to open a connection")
    read_timeout: Duration = Field(20.0, description="seconds of silence before a read fails")
    request_deadline: Duration = Field(60.0, description="wall-clock limit for one whole request, "
                                       "body included (stops servers that trickle)")
    max_redirects: int = Field(5, ge=0, le=20, description="redirects followed per request")
    max_feed_bytes: int = Field(10_000_000, gt=0, description="decoded size cap for a feed")
    max_page_bytes: int = Field(5_000_000, gt=0, description="decoded size cap for an article page")
    concurrency: int = Field(16, ge=1, le=256, description="requests in flight at once")
    per_host_limit: int = Field(2, ge=1, le=256, description="requests in flight to one host")
    set_aside_after: int = Field(2, ge=0, le=100, description="failures in a row without an "
                                 "answer (timeouts, refused or reset connections, names that "
                                 "do not resolve) after which a host is left alone for 10 "
                                 "minutes, its pages kept for a retry; 0 = never")
    extract_workers: int = Field(0, ge=0, le=64, description="processes extracting articles; "
                                 "0 = one per core")
    extract_fast: bool = Field(False, description="trafilatura's fast mode (no fallback "
                               "extractors); see scripts/eval_extraction.py before turning it on")
    fetch_articles: bool = Field(True, description="fetch and extract each new entry's page; "
                                 "off = score the feed's summary only")
    allow_private_addresses: bool = Field(False, description="let links from feed content lead "
                                          "to addresses that are not globally routable "
                                          "(loopback, private, link-local, shared, reserved)")
    max_entries_per_feed: int = Field(10_000, ge=1, description="entries read from one feed body")
    max_backoff: Duration = Field(86400.0, description="longest wait after repeated failures")
    retention_days: int | None = Field(None, ge=1, description="past this many days, drop the "
                                       "text of articles that are neither flagged nor "
                                       "labelled, keeping the row (url, title, score, matches, "
                                       "cluster); none = keep everything")
    page_retry_delays: list[Duration] = Field(
        [900.0, 3600.0, 14400.0, 43200.0], description="waits before each new try of a page "
        "that failed for a passing reason (no answer, timeout, 429, 5xx), e.g. [15m, 1h, 4h, "
        "12h]; a Retry-After that asks for longer wins; [] = never retry")
    poll_deadline: Duration = Field(600.0, description="wall-clock limit for one feed's whole "
                                    "poll (feed plus its new pages)")
    digest_time: Clock = Field("07:00", description="local time the daily digest is written")
    digest_dir: str = Field("digests", description="folder for daily digest files (relative to "
                            "the current directory)")
    log_format: Literal["text", "json"] = Field("text", description="log lines as text or JSON")
    learning: bool = Field(True, description="let what `monitor learn` learned from your labels "
                           "decide what is flagged, once it came from 20 labels of each kind "
                           "and did better than the rules on them (false: the keyword rules "
                           "alone)")
    web_allowed_hosts: list[str] = Field([], description="host names the reading room answers "
                                         "to besides the address it listens on (a reverse "
                                         "proxy's public name); other Host headers are refused")
    email: EmailSettings = Field(EmailSettings(), description="SMTP delivery of the digest")
    alerts: list[AlertRule] = Field([], description="instant alerts: rules of urls, "
                                    "min_score, tags, feeds, max_per_hour")


@dataclass(frozen=True)
class Paths:
    feeds: Path
    keywords: Path
    settings: Path
    db: Path | None = None  # an explicit --db / MONITOR_DB wins over settings.database

    @classmethod
    def resolve(cls, feeds: str | None = None, keywords: str | None = None,
                settings: str | None = None, db: str | None = None) -> Paths:
        env = os.environ.get
        db = db or env("MONITOR_DB")
        rules = Path(keywords or env("MONITOR_KEYWORDS") or "config/keywords.yaml")
        if not (keywords or env("MONITOR_KEYWORDS")) and not rules.exists():
            rules = PACKAGED_KEYWORDS  # outside a checkout: the shipped defaults
        return cls(Path(feeds or env("MONITOR_FEEDS") or "feeds.yaml"), rules,
                   Path(settings or env("MONITOR_SETTINGS") or "config/settings.yaml"),
                   Path(db) if db else None)


def validate(doc: yamlfile.Document, model: type[BaseModel]) -> Any:
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top level", file=doc.file, line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(p for p in first["loc"] if not str(p).startswith("function-"))
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        raise doc.error(loc, message) from None


def load_settings(path: Path) -> Settings:
    """Defaults, overridden by the file when it exists."""
    if not path.exists():
        return Settings()
    return validate(yamlfile.load(path), Settings)


def load_feeds(path: Path) -> tuple[FeedConfig, ...]:
    doc = yamlfile.load(path)
    feeds: tuple[FeedConfig, ...] = validate(doc, FeedsFile).feeds
    seen: dict[str, int] = {}
    for i, feed in enumerate(feeds):
        if feed.url in seen:
            raise doc.error(("feeds", i, "url"), f"duplicate of feeds[{seen[feed.url]}].url")
        seen[feed.url] = i
    return feeds
