"""A job's outputs: the comparison report (PNG/SVG), the results CSV and the SSE event stream.

Only the job's owner (``CallerDep``) sees them; for anyone else the job is a 404. Each answers
406 for an ``Accept`` it cannot produce. A finished job's report is rendered once and kept with
the job (strong ``ETag``, ``If-None-Match`` → 304); a running job's is rendered on each GET.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from app.api.deps import CallerDep, JobStoreDep
from app.api.formats import etag_matches, negotiate
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.jobs.documents import progress as job_progress
from app.jobs.reports import REPORT_MEDIA_TYPES, has_data, render_report, results_csv
from app.jobs.status import FINISHED, JobStatus, RunStatus, is_finished
from app.jobs.store import STORE_ERRORS, EventsUnreadableError, JobStore

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

SSE_PING_SECONDS = 15
SSE_BLOCK_MS = 1000  # one blocking XREAD at a time per stream, so a closed client frees quickly
SSE_READ_COUNT = 200
SSE_RETRY_MS = 2000
logger = logging.getLogger(__name__)
# Blocking stream reads run in threads; their own limiter keeps many open streams from
# starving the default thread pool that sync handlers use.
_SSE_THREADS = anyio.CapacityLimiter(64)
# An event id: a Redis stream id <milliseconds>-<sequence>, each an unsigned 64-bit integer,
# then ".<n>" for the n-th event the server derived after that entry (see _EventIds).
_STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?(?:\.([0-9]{1,20}))?")
_UINT64_MAX = 2**64 - 1
# Run statuses in the order a run goes through them; a replayed event never moves a run back.
_RUN_RANK = {"queued": 0, "running": 1}


def _unknown(job_id: str) -> NotFoundError:
    return NotFoundError(f"No job {job_id!r} (unknown, or expired).")


def _load_job(store: JobStore, job_id: str, owner: str) -> dict[str, Any]:
    job = store.get_job(job_id, owner=owner)
    if job is None:
        raise _unknown(job_id)
    return job


AcceptHeader = Annotated[str | None, Header(description="The media types the client takes.")]
CSV = "text/csv"
EVENT_STREAM = "text/event-stream"
# A running job's outputs change every few seconds: not stored. A finished one's are stored but
# revalidated (ETag → 304): a cancelled run may still write its last points after the job's
# status is final, and a copy kept for an hour would miss them.
FINISHED_CACHE = "private, no-cache"


def _etag(writes: int, data: bytes) -> str:
    """A finished job's output's strong ETag: the job's write counter it was rendered at, and
    its bytes."""
    return f'"{writes}-{hashlib.sha256(data).hexdigest()[:24]}"'


def _finished(
    data: bytes, writes: int, if_none_match: str | None, media_type: str, disposition: str
) -> Response:
    """A finished job's output, or a 304 when ``If-None-Match`` names its ETag."""
    etag = _etag(writes, data)
    headers = {"Cache-Control": FINISHED_CACHE, "ETag": etag}
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers, media_type=media_type)
    headers["Content-Disposition"] = disposition
    return Response(data, media_type=media_type, headers=headers)


def _report(
    store: JobStore, job_id: str, owner: str, fmt: Literal["png", "svg"], if_none_match: str | None
) -> Response:
    disposition = f'inline; filename="{job_id}-report.{fmt}"'
    no_store = {"Cache-Control": "no-store", "Content-Disposition": disposition}
    kept = store.kept_report(job_id, fmt, owner=owner)
    if kept is None:
        read = store.get_job_writes(job_id, owner=owner)
        if read is None:
            raise _unknown(job_id)
        job, writes = read
        if not has_data(job):
            raise ConflictError(
                f"Job {job_id!r} has no recorded batches or epochs yet (status "
                f"{job.get('status')!r}); the report exists once the first run reports progress."
            )
        data = render_report(job, fmt)
        # Not kept while running, nor when a run wrote since the read (a cancelled run's
        # last points): served once, uncached; the next GET renders again.
        if not is_finished(job["status"]) or not store.keep_report(job_id, fmt, data, writes):
            return Response(data, media_type=REPORT_MEDIA_TYPES[fmt], headers=no_store)
        kept = data, writes
    data, writes = kept
    return _finished(data, writes, if_none_match, REPORT_MEDIA_TYPES[fmt], disposition)


@router.get(
    "/{job_id}/report.{fmt}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}},
        304: {"description": "A finished job's report, unchanged since the given ETag."},
        404: {"description": "Unknown or expired job."},
        406: {"description": "The Accept header excludes the format (problem+json)."},
        409: {"description": "No run has reported yet."},
    },
)
def read_job_report(
    job_id: str,
    fmt: Literal["png", "svg"],
    caller: CallerDep,
    store: JobStoreDep,
    accept: AcceptHeader = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The comparison report (loss curves, validation accuracy, summary table): `report.png`
    or `report.svg`."""
    negotiate(accept, (REPORT_MEDIA_TYPES[fmt],))
    return _report(store, job_id, caller, fmt, if_none_match)


@router.get(
    "/{job_id}/results.csv",
    response_class=Response,
    responses={
        200: {"content": {CSV: {}}},
        304: {"description": "A finished job's CSV, unchanged since the given ETag."},
        404: {},
        406: {},
    },
)
def read_job_results_csv(
    job_id: str,
    caller: CallerDep,
    store: JobStoreDep,
    kind: Annotated[
        Literal["runs", "summary"],
        Query(description="`runs`: one row per run × epoch; `summary`: one row per scheme."),
    ] = "runs",
    accept: AcceptHeader = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The job's results as CSV (per run × epoch, or the per-scheme summary)."""
    negotiate(accept, (CSV,))
    read = store.get_job_writes(job_id, owner=caller)
    if read is None:
        raise _unknown(job_id)
    job, writes = read
    suffix = "results" if kind == "runs" else "summary"
    disposition = f'attachment; filename="{job_id}-{suffix}.csv"'
    data, media_type = results_csv(job, kind).encode(), f"{CSV}; charset=utf-8"
    if is_finished(str(job.get("status"))):
        return _finished(data, writes, if_none_match, media_type, disposition)
    headers = {"Cache-Control": "no-store", "Content-Disposition": disposition}
    return Response(data, media_type=media_type, headers=headers)


def _started(job: Mapping[str, Any]) -> float | None:
    text = job.get("started_at")
    return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None


class _Progress:
    """Job-level progress kept up to date from the event stream (monotonic under replay)."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.status = str(job.get("status"))
        self.started = _started(job)
        self.runs: list[dict[str, Any]] = [
            {
                "run": run.get("index", i),
                "label": run.get("label"),
                "status": run.get("status", "queued"),
                "epoch": run.get("epoch") or 0,
                "batch": run.get("batch") or 0,
                "total_batches": run.get("total_batches") or 0,
            }
            for i, run in enumerate(job.get("runs") or [])
        ]

    def _run(self, index: Any) -> dict[str, Any] | None:
        if isinstance(index, int) and 0 <= index < len(self.runs):
            return self.runs[index]
        return None

    def set_status(self, status: Any, entry_id: str) -> list[dict[str, Any]]:
        """Record the job's new status; returns the runs it changed (a cancel stops them all)."""
        self.status = str(status)
        if self.status == JobStatus.RUNNING and self.started is None:
            self.started = int(entry_id.partition("-")[0]) / 1000  # stream ids are Unix ms
        if self.status != JobStatus.CANCELLED:
            return []
        stopped = [run for run in self.runs if run["status"] not in FINISHED]
        for run in stopped:
            run["status"] = RunStatus.CANCELLED.value
        return stopped

    def set_run_status(self, index: Any, status: Any) -> dict[str, Any] | None:
        run = self._run(index)
        if run is None or not isinstance(status, str) or run["status"] in FINISHED:
            return run
        if status in FINISHED or _RUN_RANK.get(status, 0) >= _RUN_RANK.get(run["status"], 0):
            run["status"] = status
        return run

    def set_position(self, index: Any, epoch: Any, batch: Any) -> dict[str, Any] | None:
        run = self._run(index)
        if run is not None:
            if run["status"] == "queued":
                run["status"] = "running"
            if isinstance(epoch, int) and isinstance(batch, int):
                run["epoch"], run["batch"] = max((run["epoch"], run["batch"]), (epoch, batch))
        return run

    def document(self, changed: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """``{status, runs_total, runs_done, runs_cancelled, fraction, eta_seconds, runs: [{run,
        label, status, epoch, batch, total_batches}]}`` — every run, or only those ``changed``;
        the counts as in the job document."""
        return {
            "status": self.status,
            **job_progress(self.status, self.runs, self.started, time.time()),
            "runs": self.runs if changed is None else changed,
        }


class _EventIds:
    """Unique, resumable event ids, in increasing order: an event translated from stream entry
    ``X`` has id ``X``; the n-th event the server derives after it (a progress summary, the
    first snapshot, an ``end`` read from the job's status) has ``X.n``. Resuming after ``X.n``
    reads the entries after ``X``, and the events derived on the new connection before the
    next entry number on from ``X.(n+1)``: no event id is sent twice, every one comes after the
    one resumed from."""

    def __init__(self, resume: str) -> None:
        position, _, derived = resume.partition(".")
        self.position = position
        self._derived = int(derived or 0)

    def entry(self, entry_id: str) -> str:
        self.position, self._derived = entry_id, 0
        return entry_id

    def derived(self) -> str:
        self._derived += 1
        return f"{self.position}.{self._derived}"


def _sse(event: str, data: Any, event_id: str) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=event, id=event_id)


def _translate(
    progress: _Progress, ids: _EventIds, entries: list[tuple[str, dict[str, Any]]]
) -> tuple[list[ServerSentEvent], str | None]:
    """SSE events for a batch of stream entries, and the final status if the job ended."""
    out: list[ServerSentEvent] = []
    changed: dict[int, dict[str, Any]] = {}
    for entry_id, event in entries:
        kind = event.get("type")
        run_index = event.get("run")
        run: dict[str, Any] | None = None
        if kind == "end":
            for stopped in progress.set_status(event.get("status"), entry_id):
                changed[stopped["run"]] = stopped
            if changed:  # derived from the entries before this one
                out.append(
                    _sse("progress", progress.document(list(changed.values())), ids.derived())
                )
            out.append(_sse("end", {"status": progress.status}, ids.entry(entry_id)))
            return out, progress.status
        ids.entry(entry_id)
        if kind == "progress":
            run = progress.set_position(run_index, event.get("epoch"), event.get("batch"))
            points = event.get("points") or []
            out.append(
                _sse(
                    "points",
                    {
                        "run": run_index,
                        "label": run["label"] if run else None,
                        "epoch": event.get("epoch"),
                        "batch": event.get("batch"),
                        "points": points,
                    },
                    entry_id,
                )
            )
        elif kind == "run":
            run = progress.set_run_status(run_index, event.get("status"))
        elif kind == "epoch":
            out.append(_sse("epoch", {"run": run_index, "record": event.get("record")}, entry_id))
        elif kind == "status":
            for stopped in progress.set_status(event.get("status"), entry_id):
                changed[stopped["run"]] = stopped
            out.append(_sse("status", {"status": progress.status}, entry_id))
        if run is not None:
            changed[run["run"]] = run
    if changed:
        out.append(_sse("progress", progress.document(list(changed.values())), ids.derived()))
    return out, None


async def _event_stream(
    store: JobStore, job_id: str, job: dict[str, Any], resume: str
) -> AsyncIterator[ServerSentEvent]:
    progress = _Progress(job)
    ids = _EventIds(resume)
    first = _sse("progress", progress.document(), ids.derived())
    first.retry = SSE_RETRY_MS
    yield first
    while True:
        read = functools.partial(
            store.read_events, job_id, ids.position, SSE_BLOCK_MS, SSE_READ_COUNT
        )
        try:
            entries = await anyio.to_thread.run_sync(
                read, limiter=_SSE_THREADS, abandon_on_cancel=True
            )
            # Nothing new: the job may have ended without its "end" entry in reach (trimmed
            # stream, or a resumed client past it), or expired.
            status = None
            if not entries:
                status = await anyio.to_thread.run_sync(
                    store.get_status, job_id, limiter=_SSE_THREADS
                )
        except EventsUnreadableError as exc:
            # Redis refused the read (an id it cannot take, a key of another type): end the
            # stream cleanly, so an EventSource client stops instead of reconnecting forever.
            detail = f"cannot read events: {exc}"
            yield _sse("end", {"status": progress.status, "detail": detail}, ids.derived())
            return
        except STORE_ERRORS as exc:
            # Redis went away mid-stream (the response has started: no 503 any more). Its
            # message names the server's address: logged here, never sent to the client.
            logger.warning("event stream of %s ended: job store unreachable: %s", job_id, exc)
            end = {
                "status": progress.status,
                "reason": "store_unavailable",
                "detail": "the job store is unreachable; reconnect later to resume",
            }
            yield _sse("end", end, ids.derived())
            return
        if entries:
            events, ended = _translate(progress, ids, entries)
            for event in events:
                yield event
            if ended is not None:
                return
            continue
        if status is None:
            end = {"status": "expired", "detail": f"Job {job_id!r} no longer exists."}
            yield _sse("end", end, ids.derived())
            return
        if is_finished(status):
            yield _sse("end", {"status": status}, ids.derived())
            return


def _valid_stream_id(text: str) -> bool:
    """``<ms>``, ``<ms>-<seq>``, either then ``.<n>``; ASCII digits, each at most 2**64 - 1."""
    match = _STREAM_ID.fullmatch(text)
    return match is not None and all(
        int(part) <= _UINT64_MAX for part in match.groups() if part is not None
    )


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {EVENT_STREAM: {}}}, 404: {}, 406: {}},
)
async def stream_job_events(
    job_id: str,
    caller: CallerDep,
    store: JobStoreDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
    after: Annotated[
        str | None, Query(description="Resume after this event id (for clients without headers).")
    ] = None,
    accept: AcceptHeader = None,
) -> EventSourceResponse:
    """Server-Sent Events: `progress`, `points` (new batch losses), `epoch`, `status`, then `end`.

    Every event has a unique id (a stream position, `.n` for events derived after it), and
    ids increase: reconnecting with `Last-Event-ID` sends only events whose id comes after it;
    without one the stream replays the job's history from the start, then follows it live.
    """
    negotiate(accept, (EVENT_STREAM,))
    resume = last_event_id if last_event_id is not None else after
    if resume is not None and not _valid_stream_id(resume):
        loc: list[str | int] = (
            ["header", "last-event-id"] if last_event_id is not None else ["query", "after"]
        )
        raise InvalidInputError(
            loc,
            resume,
            "must be an event id such as '1718000000000-0' (two unsigned 64-bit integers, "
            "optionally followed by '.<n>')",
        )
    job = await anyio.to_thread.run_sync(_load_job, store, job_id, caller)
    return EventSourceResponse(
        _event_stream(store, job_id, job, resume or "0-0"),
        ping=SSE_PING_SECONDS,
        send_timeout=30,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
