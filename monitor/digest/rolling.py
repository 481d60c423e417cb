"""Rolling feeds for feed readers: the latest flagged stories as Atom and as JSON Feed 1.1,
each entry linking to its story page (why it was flagged) and to the original article."""

from __future__ import annotations

import json

from .build import Story, safe_url
from .render import TEMPLATES

JSON_FEED = "https://jsonfeed.org/version/1.1"


def render_rolling(stories: list[Story], fmt: str, *, base: str, self_url: str, title: str,
                   updated: str) -> str:
    """*base* is the reading room's origin (`http://127.0.0.1:8080`), *self_url* the feed's
    own address; *updated* when the newest story was flagged, ISO-8601."""
    if fmt == "atom":
        return TEMPLATES.get_template("rolling.atom.j2").render(
            stories=stories, base=base, self_url=self_url, title=title, updated=updated)
    items = []
    for s in stories:
        item: dict[str, object] = {
            "id": f"{base}/story/{s.id}", "url": f"{base}/story/{s.id}", "title": s.title,
            "content_text": f"score {s.score:.1f}; matched: {', '.join(s.terms[:6])}. "
                            f"{s.excerpt}",
            "date_published": s.published or updated, "authors": [{"name": s.feed}],
            "tags": [v for values in s.tags.values() for v in values]}
        if safe_url(s.url):
            item["external_url"] = safe_url(s.url)
        items.append(item)
    return json.dumps({"version": JSON_FEED, "title": title, "home_page_url": f"{base}/",
                       "feed_url": self_url, "items": items}, ensure_ascii=False, indent=2)
