"""The offline demo: sample feeds and pages (written for this project) served on 127.0.0.1."""

from .server import DemoServer

__all__ = ["DemoServer"]
