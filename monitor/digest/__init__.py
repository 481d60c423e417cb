"""Building the digest (pure), rendering it, rolling feeds, publishing it to files and email."""

from .build import Digest, Story, build_digest, day_bounds
from .render import FORMATS, render

__all__ = ["FORMATS", "Digest", "Story", "build_digest", "day_bounds", "render"]
