"""Keyword rules and relevance scoring: pure functions over text."""

from .match import score
from .rules import Rules, load_rules

__all__ = ["Rules", "load_rules", "score"]
