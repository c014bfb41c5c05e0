"""The Lua scripts: every status transition of a job or run is one atomic script, so it holds
across API processes and workers.

Every job script takes the ``KEYS`` of :data:`app.jobs.keys.LAYOUT` (built by
:func:`app.jobs.keys.script_keys`) and names them ``KEYS[JOB]``, ``KEYS[RUN]``, ...; only the
two worker-registry scripts take ``KEYS = {workers}``. A run is claimed with an attempt
counter; every write of a run carries that attempt and is dropped when it is stale, so a
redelivered or re-enqueued run overwrites its record (the claim resets its curves) and never
duplicates points.
"""

from __future__ import annotations

from app.jobs.keys import CHECKPOINT_SUFFIX, LAYOUT
from app.jobs.status import FINISHED

_SLOTS = ", ".join(slot.upper() for slot in LAYOUT)
_INDEXES = ", ".join(str(i) for i in range(1, len(LAYOUT) + 1))
_FINISHED = ", ".join(f"{status}=true" for status in sorted(FINISHED))

# The one Lua test of a final job or run status, built from app.jobs.status.FINISHED (every
# script that tests a status includes it: the job scripts' prelude, app.jobs.quotas).
FINISHED_LUA = f"""
local FINISHED = {{{_FINISHED}}}
local function finished(status) return status ~= false and FINISHED[status] == true end
"""
_PRELUDE = (
    f"""
local {_SLOTS} = {_INDEXES}
local LAYOUT = {len(LAYOUT)}
local CHECKPOINT_SUFFIX = '{CHECKPOINT_SUFFIX}'
"""
    + FINISHED_LUA
)
_PRELUDE += """
local function expire_all(slots, ttl)
  for _, slot in ipairs(slots) do redis.call('EXPIRE', KEYS[slot], ttl) end
end
local function event(maxlen, data)
  redis.call('XADD', KEYS[EVENTS], 'MAXLEN', '~', maxlen, '*', 'data', data)
end
local function push_chunks(key, argv, first)
  for i = first, #argv do redis.call('RPUSH', key, argv[i]) end
end
-- Whether the job exists and is not final, and the run has status want.
local function run_is(want)
  local jstatus = redis.call('HGET', KEYS[JOB], 'status')
  if (not jstatus) or finished(jstatus) then return false end
  return redis.call('HGET', KEYS[RUN], 'status') == want
end
-- Whether attempt may write to its run: -1 stale (another attempt owns it, or it ended),
-- 2 cancelled (nothing written: the attempt hands what it had to FINISH), nil to go ahead.
local function write_refused(attempt)
  if redis.call('HGET', KEYS[RUN], 'attempt') ~= attempt then return -1 end
  local rstatus = redis.call('HGET', KEYS[RUN], 'status')
  if rstatus == 'cancelled' then return 2 end
  if rstatus ~= 'running' then return -1 end
  return nil
end
-- Keep the first n items of a list (n = 0 or missing: delete it).
local function keep_first(key, n)
  n = tonumber(n or '0') or 0
  if n <= 0 then redis.call('DEL', key) else redis.call('LTRIM', key, 0, n - 1) end
end
-- ARGV[at] = n, then n items appended to key; returns the index after them.
local function push_counted(key, argv, at)
  local n = tonumber(argv[at])
  for i = at + 1, at + n do redis.call('RPUSH', key, argv[i]) end
  return at + n + 1
end
"""

# ARGV: worker, lease_ms, now, ttl, member, maxlen, run_index
# A run with a checkpoint resumes: its lists are cut back to what they held when the checkpoint
# was taken (so nothing is recorded twice) and resumed_from_step / _epoch say where from;
# otherwise they are reset. The event stream is not cut back: published_step / published_epoch
# (kept across attempts) say how far earlier attempts published, so the new one publishes only
# what lies beyond. Returns {state, attempt, resumed (0/1), published_step, published_epoch}.
CLAIM = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[JOB]) == 0 then return {'gone', 0, 0} end
local jstatus = redis.call('HGET', KEYS[JOB], 'status')
if finished(jstatus) then return {'terminal', 0, 0} end
local rstatus = redis.call('HGET', KEYS[RUN], 'status')
if rstatus ~= 'queued' and rstatus ~= 'running' then return {'done', 0, 0} end
if redis.call('EXISTS', KEYS[LEASE]) == 1 then return {'busy', 0, 0} end
local attempt = redis.call('HINCRBY', KEYS[RUN], 'attempt', 1)
redis.call('HSET', KEYS[RUN], 'status', 'running', 'started_at', ARGV[3], 'worker', ARGV[1],
  'epoch', 0, 'batch', 0, 'final', 'null', 'write_seq', 0,
  'error', '', 'seconds', '', 'last_batch_loss', '', 'finished_at', '',
  'resumed_from_step', '', 'resumed_from_epoch', '')
redis.call('HDEL', KEYS[RUN], 'epochs', 'diagnostics')
local resumed = 0
if redis.call('EXISTS', KEYS[CHECKPOINT]) == 1 then
  local c = redis.call('HMGET', KEYS[CHECKPOINT], 'loss_len', 'epochs_len', 'diag_len', 'step',
    'epoch', 'epochs_done')
  keep_first(KEYS[LOSS], c[1])
  keep_first(KEYS[EPOCHS], c[2])
  keep_first(KEYS[DIAG], c[3])
  redis.call('HSET', KEYS[RUN], 'batch', c[4], 'epoch', c[5], 'resumed_from_step', c[4],
    'resumed_from_epoch', c[6])
  resumed = 1
else
  redis.call('DEL', KEYS[LOSS], KEYS[EPOCHS], KEYS[DIAG])
end
redis.call('SET', KEYS[LEASE], ARGV[1] .. '#' .. attempt, 'PX', ARGV[2])
redis.call('SADD', KEYS[RUNNING], ARGV[5])
redis.call('ZREM', KEYS[QUEUED], ARGV[5])
if jstatus == 'queued' then
  redis.call('HSET', KEYS[JOB], 'status', 'running', 'started_at', ARGV[3])
  event(ARGV[6], '{"type":"status","status":"running"}')
end
event(ARGV[6], '{"type":"run","run":' .. ARGV[7] .. ',"status":"running","attempt":'
  .. attempt .. '}')
expire_all({JOB, RUN, LOSS, EVENTS}, ARGV[4])
local published = redis.call('HMGET', KEYS[RUN], 'published_step', 'published_epoch')
return {'ok', attempt, resumed, tonumber(published[1] or '0') or 0,
  tonumber(published[2] or '0') or 0}
"""
)

# ARGV: attempt, ttl, data, step, epoch, epochs_done
# Keeps the checkpoint with the lengths the run's lists have now (the reporter flushed its
# points first). Idempotent (a retried write stores the same). Returns 0 (kept) to carry on,
# 1 kept but the job was cancelled, 2 refused (the run was cancelled), -1 stale attempt.
SAVE_CHECKPOINT = (
    _PRELUDE
    + """
local refused = write_refused(ARGV[1])
if refused then return refused end
redis.call('DEL', KEYS[CHECKPOINT])
redis.call('HSET', KEYS[CHECKPOINT], 'data', ARGV[3], 'step', ARGV[4], 'epoch', ARGV[5],
  'epochs_done', ARGV[6], 'attempt', ARGV[1], 'loss_len', redis.call('LLEN', KEYS[LOSS]),
  'epochs_len', redis.call('LLEN', KEYS[EPOCHS]), 'diag_len', redis.call('LLEN', KEYS[DIAG]))
redis.call('HSET', KEYS[RUN], 'checkpoint_step', ARGV[4], 'checkpoint_bytes', #ARGV[3],
  'checkpoint_skipped', '')
expire_all({CHECKPOINT}, ARGV[2])
return redis.call('EXISTS', KEYS[CANCEL])
"""
)

# ARGV: attempt. A checkpoint the resumed attempt could not use: dropped, and the run's lists
# and resume fields reset as a fresh claim would have (1), or 0 if the attempt is stale.
DISCARD_CHECKPOINT = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[RUN], 'attempt') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[CHECKPOINT], KEYS[LOSS], KEYS[EPOCHS], KEYS[DIAG])
redis.call('HSET', KEYS[RUN], 'epoch', 0, 'batch', 0, 'resumed_from_step', '',
  'resumed_from_epoch', '')
return 1
"""
)

# ARGV: attempt, ttl, maxlen, seq, n_events, events..., n_fields, field, value, ...,
#       n_epochs, epoch records..., n_diag, diagnostics snapshots..., loss chunks...
# The events are appended in order with the rest (a worker lost mid-write leaves all or none).
# seq numbers an attempt's writes from 1: a write retried after a lost reply (seq not above
# the run's write_seq) changes nothing, so no point or record is appended twice (seq 0:
# not numbered, always applied).
# Returns 0 (written) to carry on, 1 written but the job was cancelled, 2 refused: the run
# was cancelled, nothing written (the caller's points go with its FINISH, which a cancelled
# run may still write), -1 stale attempt (nothing written).
UPDATE = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[RUN], 'attempt') ~= ARGV[1] then return -1 end
local seq = tonumber(ARGV[4])
-- A write already applied answers as it did, before the cancelled refusal: a retry after a
-- lost reply and a cancel must not read as "nothing stored" (its points would go twice).
if seq > 0 and seq <= tonumber(redis.call('HGET', KEYS[RUN], 'write_seq') or '0') then
  return redis.call('EXISTS', KEYS[CANCEL])
end
local refused = write_refused(ARGV[1])
if refused then return refused end
if seq > 0 then redis.call('HSET', KEYS[RUN], 'write_seq', seq) end
local n_events = tonumber(ARGV[5])
local at = 6 + n_events
local n = tonumber(ARGV[at])
for i = 0, n - 1 do redis.call('HSET', KEYS[RUN], ARGV[at + 1 + 2 * i], ARGV[at + 2 + 2 * i]) end
at = push_counted(KEYS[EPOCHS], ARGV, at + 1 + 2 * n)
at = push_counted(KEYS[DIAG], ARGV, at)
push_chunks(KEYS[LOSS], ARGV, at)
for i = 6, 5 + n_events do event(ARGV[3], ARGV[i]) end
expire_all({JOB, RUN, LOSS, EVENTS, EPOCHS, DIAG}, ARGV[2])
return redis.call('EXISTS', KEYS[CANCEL])
"""
)

# ARGV: attempt, ttl, maxlen, now, member, status, error, run_index, n_fields, f, v, ...,
#       n_epochs, epoch records..., n_diag, diagnostics snapshots..., loss chunks...
# A run cancelled with its job keeps "cancelled" (its last fields, records and points are still
# written, once: `finish_written` marks it, and a retried finish writes nothing), unless it
# ended by itself before the cancel reached it: a finish of "succeeded" (every batch trained,
# final metrics) or "diverged" then stands, and the run moves from runs_cancelled to runs_done
# (the job stays cancelled; its summary counts the run). The last run to finish sets the job's
# final status. Every finish bumps the job's write counter (KEEP_REPORT keeps a report only if
# it is unchanged) and drops a kept report.
FINISH = (
    _PRELUDE
    + """
if redis.call('HGET', KEYS[RUN], 'attempt') ~= ARGV[1] then return 'stale' end
local rstatus = redis.call('HGET', KEYS[RUN], 'status')
if rstatus ~= 'running' and rstatus ~= 'cancelled' then return 'stale' end
if rstatus == 'cancelled' then
  if redis.call('HGET', KEYS[RUN], 'finish_written') == '1' then return 'cancelled' end
  redis.call('HSET', KEYS[RUN], 'finish_written', 1)
end
local n = tonumber(ARGV[9])
for i = 0, n - 1 do redis.call('HSET', KEYS[RUN], ARGV[10 + 2 * i], ARGV[11 + 2 * i]) end
local at = push_counted(KEYS[EPOCHS], ARGV, 10 + 2 * n)
at = push_counted(KEYS[DIAG], ARGV, at)
push_chunks(KEYS[LOSS], ARGV, at)
redis.call('SREM', KEYS[RUNNING], ARGV[5])
redis.call('ZREM', KEYS[QUEUED], ARGV[5])
redis.call('DEL', KEYS[LEASE], KEYS[REPORT], KEYS[CHECKPOINT])
redis.call('HINCRBY', KEYS[JOB], 'writes', 1)
expire_all({JOB, RUN, LOSS, EVENTS, EPOCHS, DIAG}, ARGV[2])
local status = ARGV[6]
if rstatus == 'cancelled' then
  if status ~= 'succeeded' and status ~= 'diverged' then return 'cancelled' end
  -- No event: the job's stream ended with the cancel; its document shows the run.
  redis.call('HSET', KEYS[RUN], 'status', status, 'finished_at', ARGV[4], 'error', '')
  redis.call('HINCRBY', KEYS[JOB], 'runs_cancelled', -1)
  redis.call('HINCRBY', KEYS[JOB], 'runs_done', 1)
  return status
end
redis.call('HSET', KEYS[RUN], 'status', status, 'finished_at', ARGV[4], 'error', ARGV[7])
event(ARGV[3], '{"type":"run","run":' .. ARGV[8] .. ',"status":"' .. status .. '"}')
local done = redis.call('HINCRBY', KEYS[JOB], 'runs_done', 1)
if status == 'failed' then
  redis.call('HINCRBY', KEYS[JOB], 'runs_failed', 1)
  if redis.call('HGET', KEYS[JOB], 'error') == '' then
    redis.call('HSET', KEYS[JOB], 'error', 'run ' .. ARGV[8] .. ': ' .. ARGV[7])
  end
end
if finished(redis.call('HGET', KEYS[JOB], 'status')) then return status end
if done >= tonumber(redis.call('HGET', KEYS[JOB], 'runs_total')) then
  local final = 'succeeded'
  if tonumber(redis.call('HGET', KEYS[JOB], 'runs_failed') or '0') > 0 then final = 'failed' end
  redis.call('HSET', KEYS[JOB], 'status', final, 'finished_at', ARGV[4])
  event(ARGV[3], '{"type":"status","status":"' .. final .. '"}')
  event(ARGV[3], '{"type":"end","status":"' .. final .. '"}')
end
return status
"""
)

# KEYS: the layout, then run 0 .. n-1's hashes. ARGV: now, ttl, maxlen, job_id
# Runs still queued or running become cancelled and are counted in runs_cancelled (not in
# runs_done: a cancelled job's progress does not read as complete).
CANCEL = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[JOB]) == 0 then return false end
local jstatus = redis.call('HGET', KEYS[JOB], 'status')
if finished(jstatus) then return jstatus end
redis.call('SET', KEYS[CANCEL], '1', 'EX', ARGV[2])
redis.call('HSET', KEYS[JOB], 'status', 'cancelled', 'finished_at', ARGV[1])
redis.call('HINCRBY', KEYS[JOB], 'writes', 1)
for i = LAYOUT + 1, #KEYS do
  local rs = redis.call('HGET', KEYS[i], 'status')
  if rs == 'queued' or rs == 'running' then
    redis.call('HSET', KEYS[i], 'status', 'cancelled', 'finished_at', ARGV[1])
    redis.call('HINCRBY', KEYS[JOB], 'runs_cancelled', 1)
  end
  redis.call('SREM', KEYS[RUNNING], ARGV[4] .. ':' .. (i - LAYOUT - 1))
  redis.call('ZREM', KEYS[QUEUED], ARGV[4] .. ':' .. (i - LAYOUT - 1))
  redis.call('DEL', KEYS[i] .. CHECKPOINT_SUFFIX)
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
event(ARGV[3], '{"type":"status","status":"cancelled"}')
event(ARGV[3], '{"type":"end","status":"cancelled"}')
expire_all({JOB, EVENTS}, ARGV[2])
return jstatus
"""
)

# ARGV: member, maxlen, run_index, now, resend_at
# A running run whose lease lapsed becomes queued again (1: the caller enqueues it).
REQUEUE = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[LEASE]) == 1 then return 0 end
if not run_is('running') then
  redis.call('SREM', KEYS[RUNNING], ARGV[1])
  return 0
end
redis.call('HSET', KEYS[RUN], 'status', 'queued', 'enqueued_at', ARGV[4], 'resends', 0)
redis.call('HINCRBY', KEYS[RUN], 'requeues', 1)
redis.call('SREM', KEYS[RUNNING], ARGV[1])
redis.call('ZADD', KEYS[QUEUED], ARGV[5], ARGV[1])
event(ARGV[2], '{"type":"run","run":' .. ARGV[3] .. ',"status":"queued"}')
return 1
"""
)

# A queued run whose resend time passed: send it again (1), pushing the next resend out by
# resend_seconds × 2^resends (at most 64×); a run no longer queued leaves the index (0).
# ARGV[4] = '1' (its message is still in the broker): only look again resend_seconds later (0).
# ARGV: member, now, resend_seconds, postpone
RESEND = (
    _PRELUDE
    + """
local due = redis.call('ZSCORE', KEYS[QUEUED], ARGV[1])
if (not due) or tonumber(due) > tonumber(ARGV[2]) then return 0 end
if not run_is('queued') then
  redis.call('ZREM', KEYS[QUEUED], ARGV[1])
  return 0
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[QUEUED], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
  return 0
end
local n = redis.call('HINCRBY', KEYS[RUN], 'resends', 1)
local wait = tonumber(ARGV[3]) * math.pow(2, math.min(n, 6))
redis.call('ZADD', KEYS[QUEUED], tonumber(ARGV[2]) + wait, ARGV[1])
redis.call('HSET', KEYS[RUN], 'enqueued_at', ARGV[2])
return 1
"""
)

# ARGV: token, lease_ms. Extends the lease if the token still holds it.
RENEW = (
    _PRELUDE
    + """
if redis.call('GET', KEYS[LEASE]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[LEASE], ARGV[2])
end
return 0
"""
)

# ARGV: format, bytes, writes. Keeps a finished job's report, rendered from a read at write
# counter `writes`, until the job expires (1); 0 if the job is not finished or a run wrote
# since that read (the report may be stale).
KEEP_REPORT = (
    _PRELUDE
    + """
if not finished(redis.call('HGET', KEYS[JOB], 'status')) then return 0 end
if (redis.call('HGET', KEYS[JOB], 'writes') or '0') ~= ARGV[3] then return 0 end
local ttl = redis.call('PTTL', KEYS[JOB])
if ttl <= 0 then return 0 end
redis.call('HSET', KEYS[REPORT], ARGV[1], ARGV[2], 'writes', ARGV[3])
redis.call('PEXPIRE', KEYS[REPORT], ttl)
return 1
"""
)

# KEYS: an index (sorted set of record ids by creation time), its prune cursor (a string).
# ARGV: the records' key prefix (ARGV[1] .. id is the record's key: app.jobs.keys'
# JOB_KEY_PREFIX / DATASET_KEY_PREFIX, the one definition job_key / dataset_key use), cutoff
# (a record created after it cannot have expired yet), limit. Looks at up to `limit` ids
# created at or before the cutoff, from the cursor on, and removes those whose record is gone;
# at the cutoff the cursor starts over. The cursor is the last id looked at and kept: the next
# call starts at the rank after it, so ids sharing a creation time across two calls are all
# looked at. Bounded work per call, and long-lived records cannot stall it: a stale id goes
# within (ids created before the cutoff) / limit calls. Returns how many went.
PRUNE_INDEX = """
local limit = tonumber(ARGV[3])
local anchor = redis.call('GET', KEYS[2])
local start = 0
if anchor then start = (redis.call('ZRANK', KEYS[1], anchor) or -1) + 1 end
local page = redis.call('ZRANGE', KEYS[1], start, start + limit - 1, 'WITHSCORES')
local removed, looked = 0, 0
for i = 1, #page, 2 do
  if tonumber(page[i + 1]) > tonumber(ARGV[2]) then break end
  looked = looked + 1
  if redis.call('EXISTS', ARGV[1] .. page[i]) == 0 then
    redis.call('ZREM', KEYS[1], page[i])
    removed = removed + 1
  else
    anchor = page[i]
  end
end
if looked < limit or not anchor then redis.call('DEL', KEYS[2])
else redis.call('SET', KEYS[2], anchor) end
return removed
"""

# Worker heartbeats on the Redis server's clock. KEYS: workers ; ARGV: hostname, seconds
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# KEYS: workers
LIVE_WORKERS = """
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (tonumber(t[1]) + tonumber(t[2]) / 1e6), '+inf')
"""
