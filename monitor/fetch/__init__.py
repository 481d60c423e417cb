"""Fetching feeds and pages: the fetcher (turns per host, set-aside hosts, redirects, size
caps), its transport (httpcore over asyncio, netio), bounded decoding (limits) and the address
policy (which links may be followed, which addresses reached)."""

from .fetcher import Fetcher, Response, parse_retry_after
from .policy import is_global, request_url

__all__ = ["Fetcher", "Response", "is_global", "parse_retry_after", "request_url"]
