"""monitor: watches the news for surveillance technology built into cities and states."""

from .config import FeedConfig, Paths, Settings
from .core import Monitor, make_monitor
from .errors import (
    AlreadyRunning,
    Blocked,
    ConfigError,
    ExtractError,
    FetchError,
    Interrupted,
    InvalidLink,
    MailError,
    MonitorError,
    ParseError,
    SetAside,
    StorageError,
    TooLarge,
)
from .models import Article, CycleSummary, Entry, FeedResult, Match, Score

__version__ = "0.1.0"
__all__ = [
    "AlreadyRunning", "Article", "Blocked", "ConfigError", "CycleSummary", "Entry",
    "ExtractError", "FeedConfig", "FeedResult", "FetchError", "Interrupted", "InvalidLink",
    "MailError", "Match", "Monitor", "MonitorError", "ParseError", "Paths", "Score", "SetAside",
    "Settings", "StorageError", "TooLarge", "make_monitor",
]
