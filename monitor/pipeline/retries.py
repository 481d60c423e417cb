"""Pages that failed with a passing error, fetched again when their retry is due: the text
stored, the article rescored and put in its story again."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ..errors import ExtractError, FetchError
from ..models import Article, Entry
from ..retry import retry_at
from ..store import Store
from .stages import Stages

log = logging.getLogger("monitor.pipeline")


class Retries(Stages):
    async def retry_pages(self, limit: int = 1000) -> tuple[int, int]:
        """Fetch again the pages whose retry is due; returns (tried, arrived). An arrived page
        is stored, rescored and re-clustered, and its extract_error cleared."""
        rows = await self._read(Store.due_retries, self.clock(), limit)
        outcomes = await asyncio.gather(*(self._retry(row) for row in rows))
        return len(rows), sum(outcomes)

    async def _retry(self, row: dict[str, Any]) -> bool:
        published = datetime.fromisoformat(row["published"]) if row["published"] else None
        entry = Entry(feed_url=row["feed_url"], guid=row["guid"], url=row["url"],
                      title=row["title"] or "", summary="", author=row["author"],
                      published=published)
        try:
            page = await self._extract(row["url"], entry)
        except (FetchError, ExtractError) as exc:
            tries = (row["page_tries"] or 0) + 1
            again = retry_at(exc, self.clock(), tries, self.settings.page_retry_delays)
            log.info("page retry failed", extra={"feed": row["feed_url"], "outcome": (
                f"{row['url']}: {exc.reason}" + ("; will retry" if again else "; giving up"))})
            await self._write(Store.retry_failed, row["id"], exc.reason, again)
            return False
        except Exception as exc:  # a bug: given up on, not tried on every cycle
            self._log_bug(row["feed_url"], exc, row["url"])
            await self._write(Store.retry_failed, row["id"],
                              f"internal error: {type(exc).__name__}", None)
            return False
        article = self._article_from(entry, page, row["language"])
        await self._write(Store.page_arrived, article, row["id"], self.clock())
        await self._recluster(row, article)
        log.info("page retry arrived", extra={"feed": row["feed_url"], "outcome": (
            f"{row['url']}: score {article.score.score if article.score else 0:.1f}")})
        return True

    async def _recluster(self, row: dict[str, Any], article: Article) -> None:
        """The text arrived late: a story of its own until now, it may be a copy of another.
        An article that other copies already joined keeps its cluster."""
        article_id, cluster_id = row["id"], row["cluster_id"]
        if cluster_id not in (None, article_id) or \
                await self._read(Store.cluster_size, article_id) > 1:
            return
        await self._write(Store.recluster, article_id, (row["signature"], row["title"]),
                          (article.signature, article.title, article.text), row["feed_url"],
                          self._cluster_since())
