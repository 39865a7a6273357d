"""The engine/server boundary stays typed: no ``typing.Any`` in the server's wiring, jobs,
transports or protocol, and the engine's typed results cross it as they are (no converters)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = ["server/app.py", "server/jobs.py", "server/websocket.py", "server/osc.py",
            *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "server" / "protocol").glob("*.py"))]


def _uses_any(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "Any":
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and node.attr == "Any":
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and any(alias.name == "Any" for alias in node.names):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", BOUNDARY)
def test_no_any_at_the_boundary(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    assert _uses_any(tree) == [], f"{path}: typing.Any at lines {_uses_any(tree)}"


def test_no_view_converters_in_the_server() -> None:
    """Session views are pydantic models (engine.session_views); nothing re-shapes them."""
    for path in BOUNDARY:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert "jsonable" not in names, path
