"""Imported by the extraction pool's forkserver, and nowhere else: it warms what every worker
forked from it will share (see monitor.warmup)."""

from .warmup import warm_up

warm_up()
