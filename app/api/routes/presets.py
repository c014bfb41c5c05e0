"""Presets: complete job bodies reproducing the classic initialization experiments."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.api.auth import get_caller
from app.errors import NotFoundError
from app.jobs.presets import PRESETS, list_presets

# Behind the API keys like the jobs they are bodies for (app.api.auth).
router = APIRouter(prefix="/v1/presets", tags=["presets"], dependencies=[Depends(get_caller)])


def _entry(preset: dict[str, Any]) -> dict[str, Any]:
    body = preset["body"]
    name = preset["name"]
    return {
        **preset,
        "runs": len(body.get("schemes") or []) * int(body.get("repeats") or 1),
        "usage": {"preset": name},
        "links": {"self": f"/v1/presets/{name}"},
    }


@router.get("")
def list_all_presets() -> dict[str, list[dict[str, Any]]]:
    """Every preset: name, description, source, expected result, the full job body, run count.

    Post `{"preset": name, ...overrides}` to `/v1/jobs` to run one (objects merge key by key).
    """
    return {"presets": [_entry(p) for p in list_presets()]}


@router.get("/{name}")
def read_preset(name: str) -> dict[str, Any]:
    """One preset by name."""
    if name not in PRESETS:
        raise NotFoundError(f"No preset {name!r}; presets: {', '.join(PRESETS)}.")
    return next(_entry(p) for p in list_presets() if p["name"] == name)
