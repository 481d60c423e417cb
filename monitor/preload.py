"""Imported by the extraction pool's forkserver, and nowhere else: it warms what every worker
forked from it will share (see monitor.worker)."""

from .worker import warm_up

warm_up()
