"""Dependencies point one way: ``worker`` imports ``app``, never the reverse (the API sends
tasks through ``app.jobs.queue`` by name)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"


def test_nothing_in_app_imports_the_worker_package() -> None:
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "worker"]
    assert APP.joinpath("jobs", "queue.py").is_file()
    assert offenders == []


def test_the_worker_app_is_built_by_the_queue_module() -> None:
    from app.jobs.queue import QUEUE, TASK_NAME
    from worker.celery_app import celery_app

    assert celery_app.conf.task_default_queue == QUEUE
    assert list(celery_app.conf.include) == ["worker.tasks"]
    assert celery_app.conf.task_acks_late and TASK_NAME == "initlab.train_run"
