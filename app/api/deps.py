"""Request dependencies, declared once as ``Annotated`` aliases (``SettingsDep``, ...).

Dependencies are ``async`` so that FastAPI calls them inline instead of in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings


async def get_app_settings(request: Request) -> Settings:
    """The settings the application was built with (``create_app(settings)``)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
