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
