"""Building the digest (pure) and rendering it; clusters of copies; email."""

from .build import Digest, Story, build_digest, day_bounds
from .render import FORMATS, render

__all__ = ["FORMATS", "Digest", "Story", "build_digest", "day_bounds", "render"]
