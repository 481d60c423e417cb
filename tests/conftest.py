"""Fixtures: a project folder with real YAML files and a real SQLite file; pytest-httpserver
gives the real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def page_html() -> Callable[[str, str], str]:
    def make(title: str, body: str) -> str:
        paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
        return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
                f"<nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{paras}</article>"
                "<footer>Footer text</footer></body></html>")
    return make


@pytest.fixture
def web():
    from .helpers import LocalWeb

    server = LocalWeb()
    yield server
    server.close()


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Keep(Message):
        def handle_message(self, message) -> None:  # noqa: ANN001
            received.append(message)

    import socket

    with socket.socket() as probe:  # aiosmtpd checks its own port on start, so not port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, received
    controller.stop()
