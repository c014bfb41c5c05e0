"""``app.client`` is a client of the public HTTP API: it imports nothing else of the project
(no app.api, app.jobs, app.schemas, ...) and no server library."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_LIBRARIES = {
    "fastapi",
    "starlette",
    "pydantic",
    "celery",
    "redis",
    "uvicorn",
    "sse_starlette",
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("app.client" if node.level else node.module or "")
    return names


def test_the_client_imports_only_itself_of_the_project_and_no_server_library() -> None:
    files = sorted((ROOT / "app" / "client").rglob("*.py"))
    assert len(files) >= 5
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imports(path)
            if (name.startswith(("app.", "worker")) and not name.startswith("app.client"))
            or name.split(".")[0] in SERVER_LIBRARIES
        )
        for path in files
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from app.jobs import store\nimport redis\nfrom . import http\n")
    assert {"app.jobs", "redis", "app.client"} <= _imports(probe)
