"""Posted model specs in Redis: ``initlab:model:{id}`` → the canonical spec and seed (JSON).

Only the spec is kept (the weights are generated from it; each API process keeps small files'
bodies, app/api/routes/models.py). A record expires ``model_ttl_seconds`` after the latest POST
of the same spec.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from app.jobs.keys import model_key


class ModelStore:
    """Model specs by id, each with the store's TTL."""

    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl_seconds = ttl_seconds

    def put(self, model_id: str, spec: dict[str, Any], seed: int) -> None:
        doc = orjson.dumps({"spec": spec, "seed": seed})
        self.redis.set(model_key(model_id), doc, ex=self.ttl_seconds)

    def get(self, model_id: str) -> tuple[dict[str, Any], int] | None:
        """The spec and seed posted under ``model_id``; None if unknown or expired."""
        raw = self.redis.get(model_key(model_id))
        if raw is None:
            return None
        doc = orjson.loads(raw)
        return doc["spec"], doc["seed"]
