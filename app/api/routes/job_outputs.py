"""A job's outputs: the comparison report (PNG/SVG), the results CSV and the SSE event stream.

Only the job's owner (``CallerDep``) sees them; for anyone else the job is a 404.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import orjson
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from app.api.deps import CallerDep, JobStoreDep
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.jobs.reports import REPORT_MEDIA_TYPES, has_data, render_report, results_csv
from app.jobs.store import RUN_TERMINAL as _RUN_DONE
from app.jobs.store import EventsUnreadableError, JobStore, is_terminal

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

SSE_PING_SECONDS = 15
SSE_BLOCK_MS = 1000  # one blocking XREAD at a time per stream, so a closed client frees quickly
SSE_READ_COUNT = 200
SSE_RETRY_MS = 2000
# Blocking stream reads run in threads; their own limiter keeps many open streams from
# starving the default thread pool that sync handlers use.
_SSE_THREADS = anyio.CapacityLimiter(64)
# A Redis stream id: <milliseconds>-<sequence>, each an unsigned 64-bit integer.
_STREAM_ID = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")
_UINT64_MAX = 2**64 - 1
# Run statuses in the order a run goes through them; a replayed event never moves a run back.
_RUN_RANK = {"queued": 0, "running": 1}


def _load_job(store: JobStore, job_id: str, owner: str) -> dict[str, Any]:
    job = store.get_job(job_id, owner=owner)
    if job is None:
        raise NotFoundError(f"No job {job_id!r} (unknown, or expired).")
    return job


def _cache_control(job: Mapping[str, Any]) -> str:
    # A finished job's outputs never change again; a running one's change every few seconds.
    return "private, max-age=3600" if is_terminal(str(job.get("status"))) else "no-store"


def _report(store: JobStore, job_id: str, owner: str, fmt: Literal["png", "svg"]) -> Response:
    job = _load_job(store, job_id, owner)
    if not has_data(job):
        raise ConflictError(
            f"Job {job_id!r} has no recorded batches or epochs yet (status {job.get('status')!r}); "
            "the report exists once the first run reports progress."
        )
    return Response(
        render_report(job, fmt),
        media_type=REPORT_MEDIA_TYPES[fmt],
        headers={
            "Cache-Control": _cache_control(job),
            "Content-Disposition": f'inline; filename="{job_id}-report.{fmt}"',
        },
    )


@router.get(
    "/{job_id}/report.{fmt}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/svg+xml": {}}},
        404: {"description": "Unknown or expired job."},
        409: {"description": "No run has reported yet."},
    },
)
def read_job_report(
    job_id: str, fmt: Literal["png", "svg"], caller: CallerDep, store: JobStoreDep
) -> Response:
    """The comparison report (loss curves, validation accuracy, summary table): `report.png`
    or `report.svg`."""
    return _report(store, job_id, caller, fmt)


@router.get(
    "/{job_id}/results.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, 404: {}},
)
def read_job_results_csv(
    job_id: str,
    caller: CallerDep,
    store: JobStoreDep,
    kind: Annotated[
        Literal["runs", "summary"],
        Query(description="`runs`: one row per run × epoch; `summary`: one row per scheme."),
    ] = "runs",
) -> Response:
    """The job's results as CSV (per run × epoch, or the per-scheme summary)."""
    job = _load_job(store, job_id, caller)
    suffix = "results" if kind == "runs" else "summary"
    return Response(
        results_csv(job, kind),
        media_type="text/csv; charset=utf-8",
        headers={
            "Cache-Control": _cache_control(job),
            "Content-Disposition": f'attachment; filename="{job_id}-{suffix}.csv"',
        },
    )


class _Progress:
    """Job-level progress kept up to date from the event stream (monotonic under replay)."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.status = str(job.get("status"))
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

    def set_run_status(self, index: Any, status: Any) -> dict[str, Any] | None:
        run = self._run(index)
        if run is None or not isinstance(status, str) or run["status"] in _RUN_DONE:
            return run
        if status in _RUN_DONE or _RUN_RANK.get(status, 0) >= _RUN_RANK.get(run["status"], 0):
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
        """``{status, runs_total, runs_done, fraction, runs: [{run, label, status, epoch,
        batch, total_batches}]}`` — every run, or only those ``changed``."""
        total = len(self.runs)
        done = sum(1 for run in self.runs if run["status"] in _RUN_DONE)
        # Like the job document: finished runs plus the batch fraction of running ones.
        partial = sum(
            min(1.0, run["batch"] / run["total_batches"])
            for run in self.runs
            if run["status"] == "running" and run["total_batches"]
        )
        fraction = 1.0 if is_terminal(self.status) or not total else (done + partial) / total
        return {
            "status": self.status,
            "runs_total": total,
            "runs_done": done,
            "fraction": round(min(1.0, fraction), 4),
            "runs": self.runs if changed is None else changed,
        }


def _sse(event: str, data: Any, event_id: str | None = None) -> ServerSentEvent:
    return ServerSentEvent(data=orjson.dumps(data).decode(), event=event, id=event_id)


def _translate(
    progress: _Progress, entries: list[tuple[str, dict[str, Any]]]
) -> tuple[list[ServerSentEvent], str | None]:
    """SSE events for a batch of stream entries, and the final status if the job ended."""
    out: list[ServerSentEvent] = []
    changed: dict[int, dict[str, Any]] = {}
    last_id = ""
    for entry_id, event in entries:
        last_id = entry_id
        kind = event.get("type")
        run_index = event.get("run")
        run: dict[str, Any] | None = None
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
            progress.status = str(event.get("status"))
            out.append(_sse("status", {"status": progress.status}, entry_id))
        elif kind == "end":
            progress.status = str(event.get("status"))
            if changed:
                out.append(_sse("progress", progress.document(list(changed.values())), entry_id))
            out.append(_sse("end", {"status": progress.status}, entry_id))
            return out, progress.status
        if run is not None:
            changed[run["run"]] = run
    if changed:
        out.append(_sse("progress", progress.document(list(changed.values())), last_id))
    return out, None


async def _event_stream(
    store: JobStore, job_id: str, job: dict[str, Any], last_id: str
) -> AsyncIterator[ServerSentEvent]:
    progress = _Progress(job)
    first = _sse("progress", progress.document())
    first.retry = SSE_RETRY_MS
    yield first
    while True:
        read = functools.partial(store.read_events, job_id, last_id, SSE_BLOCK_MS, SSE_READ_COUNT)
        try:
            entries = await anyio.to_thread.run_sync(
                read, limiter=_SSE_THREADS, abandon_on_cancel=True
            )
        except EventsUnreadableError as exc:
            # Redis refused the read (an id it cannot take, a key of another type): end the
            # stream cleanly, so an EventSource client stops instead of reconnecting forever.
            yield _sse("end", {"status": progress.status, "detail": f"cannot read events: {exc}"})
            return
        if entries:
            last_id = entries[-1][0]
            events, ended = _translate(progress, entries)
            for event in events:
                yield event
            if ended is not None:
                return
            continue
        # Nothing new: the job may have ended without its "end" entry in reach (trimmed
        # stream, or a resumed client past it), or expired.
        status = await anyio.to_thread.run_sync(store.get_status, job_id, limiter=_SSE_THREADS)
        if status is None:
            yield _sse("end", {"status": "expired", "detail": f"Job {job_id!r} no longer exists."})
            return
        if is_terminal(status):
            yield _sse("end", {"status": status})
            return


def _valid_stream_id(text: str) -> bool:
    """``<ms>`` or ``<ms>-<seq>``, ASCII digits, each part at most 2**64 - 1."""
    match = _STREAM_ID.fullmatch(text)
    return match is not None and all(
        int(part) <= _UINT64_MAX for part in match.groups() if part is not None
    )


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {}},
)
async def stream_job_events(
    job_id: str,
    caller: CallerDep,
    store: JobStoreDep,
    last_event_id: Annotated[str | None, Header(description="Resume after this event id.")] = None,
    after: Annotated[
        str | None, Query(description="Resume after this event id (for clients without headers).")
    ] = None,
) -> EventSourceResponse:
    """Server-Sent Events: `progress`, `points` (new batch losses), `epoch`, `status`, then `end`.

    Event ids are stream positions: reconnecting with `Last-Event-ID` resumes after it;
    without one the stream replays the job's history from the start, then follows it live.
    """
    resume = last_event_id if last_event_id is not None else after
    if resume is not None and not _valid_stream_id(resume):
        loc: list[str | int] = (
            ["header", "last-event-id"] if last_event_id is not None else ["query", "after"]
        )
        raise InvalidInputError(
            loc,
            resume,
            "must be an event id such as '1718000000000-0' (two unsigned 64-bit integers)",
        )
    job = await anyio.to_thread.run_sync(_load_job, store, job_id, caller)
    return EventSourceResponse(
        _event_stream(store, job_id, job, resume or "0-0"),
        ping=SSE_PING_SECONDS,
        send_timeout=30,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
