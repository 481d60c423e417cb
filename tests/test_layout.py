"""The house rules a newcomer relies on: no module in monitor/ over 400 lines, and the import
graph between its parts (a module, or a package as a whole) without a circle, with the facade
(core) imported only by what sits above it."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"
MAX_LINES = 400
ABOVE_THE_FACADE = {"cli", "service", "web", "__init__", "__main__"}


def part(path: Path) -> str:
    """monitor/store/feeds.py -> store; monitor/core.py -> core."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    """The parts of monitor that a module imports, at any depth of its code."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0]  # of __init__.py: the package itself
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            pieces = name.split(".")
            if pieces[0] == "monitor" and len(pieces) > 1:
                out.add(pieces[1])
    return out


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        edges.setdefault(part(path), set()).update(imported_parts(path) - {part(path)})
    return edges


def test_no_module_is_over_400_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_parts_import_each_other_without_a_circle() -> None:
    edges = graph()
    try:
        order = list(TopologicalSorter(edges).static_order())
    except CycleError as exc:
        raise AssertionError(f"an import circle: {' -> '.join(exc.args[1])}") from None
    assert {"core", "store", "pipeline", "fetch", "scoring", "digest"} <= set(order)


def test_only_the_commands_the_service_and_the_web_pages_import_the_facade() -> None:
    users = {name for name, deps in graph().items() if "core" in deps}
    assert users <= ABOVE_THE_FACADE, users


def test_the_graph_sees_relative_imports() -> None:
    """A guard on the test itself: the store imports the models, the pipeline the store."""
    edges = graph()
    assert "models" in edges["store"] and "store" in edges["pipeline"]
