"""The extraction workers' jobs: pure functions of a fetched page, run in a worker
process (monitor.pipeline.workers)."""

from __future__ import annotations

from dataclasses import replace

from ..copies import signature
from ..models import Entry, Page
from ..scoring import Rules, score
from ..scoring.rules import RulesKey


def extract_job(content: bytes, url: str, content_type: str, charset: str | None,
                fast: bool, rules: Rules | RulesKey | None = None, entry: Entry | None = None
                ) -> Page:
    """A page's job in a worker: its text, the signature that clusters its copies, and with
    *rules* its score as the entry's article (scoring is CPU work too: not on the loop).
    Rules by name that this worker lacks raise RulesMissing before any work. Imported here,
    not at the top, so that the main process never loads trafilatura when extraction runs
    in workers."""
    from ..extract import extract_page

    if isinstance(rules, RulesKey):
        rules = rules.resolve()
    page = extract_page(content, url, content_type, charset, fast)
    page = replace(page, signature=signature(page.text))
    if rules is not None and entry is not None:
        page = replace(page, score=score(rules, article_title(entry, page), page.text))
    return page


def article_title(entry: Entry, page: Page | None) -> str:
    """The feed's title, unless it is missing or only the link; then the page's."""
    if entry.title and entry.title != entry.url:
        return entry.title
    return page.title if page and page.title else entry.title
