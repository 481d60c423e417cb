"""Loaded at start-up by every Python process bench.py starts (it puts this folder first on
PYTHONPATH): no network for names (offline_resolver)."""

import offline_resolver  # noqa: F401
