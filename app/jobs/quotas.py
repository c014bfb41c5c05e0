"""Per-caller quotas: the 429 they answer, and the queued/running runs one caller may have.

Upload quotas (count and bytes kept) live with the uploads (``app.jobs.uploads``); this
module bounds the runs a caller has waiting or training, across all its jobs.

Key: ``initlab:owner:{owner}:active`` sorted set of ``{job_id}:{runs}``, score = when it was
admitted (Redis server time). A job counts ``runs_total - runs_done`` of its record while it is
not final; a finished, failed or cancelled job leaves the set at the next check. A job admitted
but never recorded (the API died in between) counts for ``RESERVATION_SECONDS``, then leaves.
Check and admission are one Lua script, so two API processes cannot both pass the limit.
"""

from __future__ import annotations

from typing import Any

from app.errors import InitlabError
from app.jobs.keys import JOB_KEY_PREFIX, owner_active_key
from app.jobs.scripts import FINISHED_LUA

# How long an admitted job may take to be recorded before its share is given back.
RESERVATION_SECONDS = 60


class QuotaExceededError(InitlabError):
    """A caller over one of its quotas (429); ``errors[].loc`` names the limit."""

    status = 429
    title = "Quota exceeded"
    slug = "quota-exceeded"

    def __init__(self, limit_name: str, limit: int, usage: int, what: str, how: str) -> None:
        setting = "INITLAB_" + limit_name.upper()
        msg = f"{usage} {what} of a limit of {limit} ({setting})"
        super().__init__(
            f"Quota {limit_name} exceeded: you have {msg}; {how}.",
            errors=[{"loc": ["quota", limit_name], "msg": msg, "input": usage}],
        )
        self.limit = limit
        self.usage = usage


# KEYS: the owner's active set. ARGV: member, runs, limit, reservation_s, ttl, job key prefix
_ADMIT = (
    FINISHED_LUA
    + """
local now = tonumber(redis.call('TIME')[1])
local used = 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local member, since = entries[i], tonumber(entries[i + 1])
  local id, runs = string.match(member, '^(.*):(%d+)$')
  local job = redis.call('HMGET', ARGV[6] .. id, 'status', 'runs_total', 'runs_done')
  local status = job[1]
  if not status then
    if now - since > tonumber(ARGV[4]) then redis.call('ZREM', KEYS[1], member)
    else used = used + tonumber(runs) end
  elseif finished(status) then
    redis.call('ZREM', KEYS[1], member)
  else
    used = used + math.max(0, tonumber(job[2] or runs) - tonumber(job[3] or '0'))
  end
end
if ARGV[1] == '' then return {1, used} end
if used + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return {0, used} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, used}
"""
)


class RunQuota:
    """At most ``limit`` queued or running runs per caller, across that caller's jobs."""

    def __init__(self, client: Any, *, limit: int, ttl_seconds: int) -> None:
        self.redis = client
        self.limit = int(limit)
        self.ttl = int(ttl_seconds)
        self._admit = client.register_script(_ADMIT)

    def admit(self, owner: str, job_id: str, runs: int) -> None:
        """Count ``runs`` runs of ``job_id`` (not recorded yet) against ``owner``'s quota, or
        raise :class:`QuotaExceededError` (429) if they do not fit."""
        ok, used = self._admit(
            keys=[owner_active_key(owner)],
            args=[
                f"{job_id}:{runs}",
                runs,
                self.limit,
                RESERVATION_SECONDS,
                self.ttl,
                JOB_KEY_PREFIX,
            ],
        )
        if not ok:
            raise QuotaExceededError(
                "max_queued_runs_per_caller",
                self.limit,
                int(used),
                "runs queued or running",
                f"this job adds {runs}; wait for your jobs to finish or cancel one "
                "(DELETE /v1/jobs/{id})",
            )

    def release(self, owner: str, job_id: str, runs: int) -> None:
        """Give back an admission whose job was not recorded."""
        self.redis.zrem(owner_active_key(owner), f"{job_id}:{runs}")

    def usage(self, owner: str) -> int:
        """``owner``'s runs queued or running (an empty member admits nothing)."""
        _, used = self._admit(
            keys=[owner_active_key(owner)],
            args=["", 0, self.limit, RESERVATION_SECONDS, self.ttl, JOB_KEY_PREFIX],
        )
        return int(used)
