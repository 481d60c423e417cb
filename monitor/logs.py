"""One log line per event: time, level, feed, outcome. Text or JSON lines."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class LineFormatter(logging.Formatter):
    def __init__(self, as_json: bool = False) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        feed = getattr(record, "feed", None)
        outcome = getattr(record, "outcome", None)
        message = record.getMessage()
        if self.as_json:
            data = {"time": when, "level": record.levelname.lower(), "event": message}
            if feed:
                data["feed"] = feed
            if outcome:
                data["outcome"] = outcome
            if record.exc_info:
                data["traceback"] = self.formatException(record.exc_info)
            return json.dumps(data, ensure_ascii=False)
        line = f"{when} {record.levelname:<7} {message}"
        if feed:
            line += f" feed={feed}"
        if outcome:
            line += f" :: {outcome}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: int = logging.INFO, as_json: bool = False, stream=None) -> None:  # noqa: ANN001
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LineFormatter(as_json))
    root = logging.getLogger("monitor")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for noisy in ("trafilatura", "htmldate", "httpx", "httpcore", "charset_normalizer",
                  "courlan", "justext", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL if noisy != "apscheduler"
                                          else logging.WARNING)
