"""Uploaded ``.npz`` datasets in Redis, with per-caller quotas.

Keys (each expires with the upload's TTL):

- ``initlab:dataset:{id}``             hash: ``data`` (the ``.npz``), ``meta`` (JSON), ``owner``
- ``initlab:datasets``                 sorted set: upload ids by creation time (a few ids of
  expired uploads are pruned on each upload: ``app.jobs.scripts.PRUNE_INDEX``)
- ``initlab:owner:{owner}:datasets``   sorted set: one caller's upload ids by creation time

A caller keeps at most ``max_uploads`` uploads of at most ``max_bytes`` in all: the check and
the write are one Lua script, so two API processes cannot both pass it. Deleting an upload, or
its TTL running out, frees its share.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import redis

from app.jobs import scripts
from app.jobs.keys import DATASET_KEY_PREFIX, DATASETS_KEY, prune_call
from app.jobs.keys import dataset_key as _dataset_key
from app.jobs.keys import owner_datasets_key as _owner_key
from app.jobs.quotas import QuotaExceededError
from app.jobs.store import ANONYMOUS, owned, owner_of, redis_client


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# The caller's live uploads: (count, bytes); ids whose record expired are pruned.
_USAGE = (
    """
local function usage(index)
  local count, bytes = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local size = redis.call('HSTRLEN', '"""
    + DATASET_KEY_PREFIX
    + """' .. id, 'data')
    if size == 0 then
      redis.call('ZREM', index, id)
    else
      count = count + 1
      bytes = bytes + size
    end
  end
  return count, bytes
end
"""
)

# KEYS: dataset, owner index, global index
# ARGV: id, data, meta, owner, now, ttl, max_uploads, max_bytes
_PUT = (
    _USAGE
    + """
local count, bytes = usage(KEYS[2])
local size = string.len(ARGV[2])
if count + 1 > tonumber(ARGV[7]) then return {'uploads', count, bytes} end
if bytes + size > tonumber(ARGV[8]) then return {'bytes', count, bytes} end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'meta', ARGV[3], 'owner', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return {'ok', count + 1, bytes + size}
"""
)

# KEYS: owner index
_READ_USAGE = _USAGE + "\nlocal count, bytes = usage(KEYS[1])\nreturn {count, bytes}\n"


class DatasetStore:
    """Uploaded ``.npz`` datasets, kept in Redis with a TTL (one hash per upload).

    ``max_uploads`` / ``max_bytes``: what one owner may keep at once (None: unbounded)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: int,
        max_uploads: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.redis: Any = client
        self.ttl = int(ttl_seconds)
        self.max_uploads = max_uploads
        self.max_bytes = max_bytes
        self._put = self.redis.register_script(_PUT)
        self._usage = self.redis.register_script(_READ_USAGE)
        self._prune_index = self.redis.register_script(scripts.PRUNE_INDEX)

    @classmethod
    def from_settings(cls, settings: Any = None, client: redis.Redis | None = None) -> DatasetStore:
        """The store the settings describe (``client``: share an existing connection pool)."""
        from app.config import get_settings

        settings = settings or get_settings()
        return cls(
            client if client is not None else redis_client(settings.redis_url),
            ttl_seconds=settings.dataset_ttl_seconds,
            max_uploads=settings.max_uploads_per_caller,
            max_bytes=settings.max_upload_bytes_per_caller,
        )

    def usage(self, owner: str = ANONYMOUS) -> tuple[int, int]:
        """``owner``'s live uploads: (count, total bytes)."""
        count, size = self._usage(keys=[_owner_key(owner)])
        return int(count), int(size)

    def check_quota(self, owner: str, incoming: int) -> None:
        """Refuse (429) an upload of about ``incoming`` bytes that cannot fit ``owner``'s
        quota: a cheap early check (the authoritative one is :meth:`put`'s)."""
        count, size = self.usage(owner)
        self._refuse_if_over(owner, count, size, incoming)

    def _refuse_if_over(self, owner: str, count: int, size: int, incoming: int) -> None:
        if self.max_uploads is not None and count + 1 > self.max_uploads:
            raise QuotaExceededError(
                "max_uploads_per_caller",
                self.max_uploads,
                count,
                "uploads kept",
                "delete one (DELETE /v1/datasets/{id}) or wait until one expires",
            )
        if self.max_bytes is not None and size + incoming > self.max_bytes:
            raise QuotaExceededError(
                "max_upload_bytes_per_caller",
                self.max_bytes,
                size,
                "bytes of uploads kept",
                f"this upload adds {incoming}; delete uploads (DELETE /v1/datasets/{{id}}) "
                "or send a smaller one",
            )

    def put(
        self, data: bytes, meta: Mapping[str, Any] | None = None, *, owner: str = ANONYMOUS
    ) -> str:
        """Store an upload of ``owner``; returns its id (``ds_<hex>``). Raises
        :class:`QuotaExceededError` (429) when it does not fit ``owner``'s quota."""
        dataset_id = "ds_" + secrets.token_hex(12)
        now = time.time()
        info = {
            **(meta or {}),
            "id": dataset_id,
            "bytes": len(data),
            "created_at": _iso(now),
            "expires_at": _iso(now + self.ttl),
        }
        unbounded = 2**53  # Lua numbers are doubles
        status, count, size = self._put(
            keys=[_dataset_key(dataset_id), _owner_key(owner), DATASETS_KEY],
            args=[
                dataset_id,
                data,
                orjson.dumps(info, option=orjson.OPT_SERIALIZE_NUMPY),
                owner,
                now,
                self.ttl,
                unbounded if self.max_uploads is None else self.max_uploads,
                unbounded if self.max_bytes is None else self.max_bytes,
            ],
        )
        if status != b"ok":
            self._refuse_if_over(owner, int(count), int(size), len(data))
        # A few ids of expired uploads leave the global index (bounded work per upload).
        keys, args = prune_call(DATASETS_KEY, DATASET_KEY_PREFIX, now - self.ttl)
        self._prune_index(keys=keys, args=args)
        return dataset_id

    def get(self, dataset_id: str) -> bytes | None:
        """The upload's bytes (no owner check: workers load a validated job's upload)."""
        data: bytes | None = self.redis.hget(_dataset_key(dataset_id), "data")
        return data

    def meta(self, dataset_id: str, *, owner: str | None = None) -> dict | None:
        """The upload's metadata; None if unknown, expired or (given ``owner``) another's."""
        raw, stored_owner = self.redis.hmget(_dataset_key(dataset_id), ["meta", "owner"])
        if raw is None or not owned(stored_owner, owner):
            return None
        info: dict = orjson.loads(raw)
        return info

    def exists(self, dataset_id: str) -> bool:
        return bool(self.redis.exists(_dataset_key(dataset_id)))

    def delete(self, dataset_id: str, *, owner: str | None = None) -> bool:
        """Remove an upload (given ``owner``, only its own); False if there was none."""
        raw, stored_owner = self.redis.hmget(_dataset_key(dataset_id), ["meta", "owner"])
        if raw is None or not owned(stored_owner, owner):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(_dataset_key(dataset_id))
        pipe.zrem(DATASETS_KEY, dataset_id)
        pipe.zrem(_owner_key(owner_of(stored_owner)), dataset_id)
        return bool(pipe.execute()[0])

    def list(self, *, owner: str | None = None) -> list[dict]:
        """Live uploads' metadata (``owner``'s only, if given), newest first (expired ids are
        pruned)."""
        index = DATASETS_KEY if owner is None else _owner_key(owner)
        out = []
        for member in self.redis.zrevrange(index, 0, -1):
            dataset_id = member.decode()
            info = self.meta(dataset_id)
            if info is None:
                self.redis.zrem(index, dataset_id)
                continue
            out.append(info)
        return out
