"""The exception tree. Every error `monitor` raises on purpose is a MonitorError::

    MonitorError
    ├── ConfigError        a YAML file is invalid (carries file, line, key path)
    ├── FetchError         a URL could not be fetched (carries url, status)
    │   ├── TooLarge       the decoded body passed the size cap
    │   ├── Blocked        the address or scheme is not allowed
    │   ├── InvalidLink    a URL no request can be made for (bad host, IDNA, characters)
    │   └── SetAside       its host failed again and again: not asked now, tried later
    ├── ParseError         bytes that are not a feed (carries url)
    ├── ExtractError       a page that yields no article text (carries url)
    ├── StorageError       the database refused a write (disk full, locked too long)
    ├── MailError          the digest could not be emailed (settings, SMTP)
    ├── LabelsError        too few labels, or not of both kinds, to learn from
    └── AlreadyRunning     another service holds the database lock

    Interrupted            SIGTERM or SIGINT stopped a one-shot command (carries the signal):
                           a BaseException, like KeyboardInterrupt, so that no `except
                           MonitorError` or `except Exception` on the way swallows it

Library errors are wrapped where they enter: ``raise FetchError(url, ...) from exc``.
Expected failures are logged as one line from ``str(error)``; no traceback.
"""

from __future__ import annotations

import signal


class MonitorError(Exception):
    """Root of every error `monitor` raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # errors cross process boundaries (extraction runs in worker processes); the default
        # pickling would call __init__ with the message alone and fail
        return (_restore, (type(self), self.__dict__.copy(), str(self)))


class ConfigError(MonitorError):
    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message, self.file, self.line, self.key = message, file, line, key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class FetchError(MonitorError):
    """*unreachable*: no answer at all (connect errors, timeouts, resets, names that do not
    resolve), as opposed to an answer we refuse (a status, a redirect loop, a bad body)."""

    def __init__(self, url: str, reason: str, *, status: int | None = None,
                 retry_after: float | None = None, unreachable: bool = False) -> None:
        self.url, self.reason, self.status, self.retry_after = url, reason, status, retry_after
        self.unreachable = unreachable
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"

    @property
    def transient(self) -> bool:
        """Worth trying again later: no answer at all, 429, 408 or a 5xx. A 404, 410, a
        redirect loop or any other answer stays what it is."""
        return self.unreachable or self.status in (408, 425, 429) or (self.status or 0) >= 500


class TooLarge(FetchError):
    transient = False


class Blocked(FetchError):
    transient = False


class InvalidLink(FetchError):
    transient = False


class SetAside(FetchError):
    transient = True


class ParseError(MonitorError):
    def __init__(self, url: str, reason: str) -> None:
        self.url, self.reason = url, reason
        super().__init__(f"{url}: {reason}")


class ExtractError(ParseError):
    pass


class StorageError(MonitorError):
    pass


class MailError(MonitorError):
    pass


class LabelsError(MonitorError):
    """The labels cannot be learned from: too few, or all of one kind."""


class AlreadyRunning(MonitorError):
    pass


class Interrupted(BaseException):
    """What was in flight finished or rolled back; the command exits 128 + the signal."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _restore(cls: type[MonitorError], state: dict[str, object], message: str) -> MonitorError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error
