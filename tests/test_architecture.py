"""Dependencies point one way (docs/architecture.md), checked on the source with ``ast``.

``app/initializers`` and ``app/training`` are pure NumPy: no web framework, queue, Redis or
pydantic, and nothing from the layers above them. Routers reach Redis and Celery only through
``app/jobs``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SERVICE_LIBRARIES = {
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic_settings",
    "celery",
    "kombu",
    "billiard",
    "redis",
    "uvicorn",
    "sse_starlette",
}
# Modules of this project each pure layer may not import (they sit above it).
UPPER_LAYERS = {
    "app/initializers": (
        "app.api",
        "app.jobs",
        "app.schemas",
        "app.main",
        "app.config",
        "app.training",
        "worker",
    ),
    "app/training": ("app.api", "app.jobs", "app.schemas", "app.main", "app.config", "worker"),
    "app/models": (
        "app.api",
        "app.jobs",
        "app.schemas",
        "app.main",
        "app.config",
        "app.training",
        "worker",
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of every module ``path`` (module ``module``) imports, relative resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if module is not None else module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def python_files(relative: str) -> list[Path]:
    return sorted((ROOT / relative).rglob("*.py"))


def test_imported_modules_resolves_relative_and_absolute_imports(tmp_path: Path) -> None:
    # The checker itself: a file that imports forbidden names in every spelling is caught.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import redis\nfrom fastapi import APIRouter\nfrom ..jobs import store\n"
        "import celery.result as r\nfrom . import losses\n"
    )
    found = imported_modules(probe, "app.training.probe")
    assert {"redis", "fastapi", "app.jobs", "celery.result", "app.training"} <= found


@pytest.mark.parametrize("layer", ["app/initializers", "app/training", "app/models"])
def test_pure_layers_import_no_service_library(layer: str) -> None:
    files = python_files(layer)
    assert files, f"{layer} has no Python files"
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in SERVICE_LIBRARIES
        )
        for path in files
    }
    assert {k: v for k, v in offending.items() if v} == {}


@pytest.mark.parametrize("layer", ["app/initializers", "app/training", "app/models"])
def test_pure_layers_import_nothing_from_layers_above(layer: str) -> None:
    upper = UPPER_LAYERS[layer]
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in imported_modules(path)
            if any(name == u or name.startswith(u + ".") for u in upper)
        )
        for path in python_files(layer)
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_routers_reach_redis_and_celery_only_through_app_jobs() -> None:
    files = python_files("app/api/routes")
    assert any(p.name == "health.py" for p in files)
    forbidden = {"redis", "celery", "kombu", "worker"}
    offending = {
        str(path.relative_to(ROOT)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in forbidden
        )
        for path in files
    }
    assert {k: v for k, v in offending.items() if v} == {}
